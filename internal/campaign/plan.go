package campaign

import "fmt"

// RowError is why one row of a file is refused: its row number (1 for
// the first row after a CSV header, or the first line of JSONL), the
// field at fault (empty for the row as a whole) and the reason.
type RowError struct {
	Row     int    `json:"row"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error returns "row N: field: message".
func (e RowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("row %d: %s", e.Row, e.Message)
	}
	return fmt.Sprintf("row %d: %s: %s", e.Row, e.Field, e.Message)
}

// Settings are a campaign's settings: the sendredpack fields every row
// shares (a row's own wishing, remark and scene_id win), the rate, and
// optionally the campaign's id.
type Settings struct {
	// CampaignID names the campaign; empty derives it from the rows and
	// the other settings. 1 to 64 of [A-Za-z0-9_-].
	CampaignID string `json:"campaign_id,omitempty"`
	WxAppID    string `json:"wxappid"`
	SendName   string `json:"send_name"`
	ActName    string `json:"act_name"`
	Wishing    string `json:"wishing"`
	Remark     string `json:"remark"`
	ClientIP   string `json:"client_ip"`
	SceneID    string `json:"scene_id,omitempty"`
	// Rate is the sends per second; 0 takes the stack's campaign rate.
	Rate float64 `json:"rate,omitempty"`
}
