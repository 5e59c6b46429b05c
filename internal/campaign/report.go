package campaign

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// Rows yields a campaign's ledger items in row order; it stops early when
// yield returns false.
type Rows func(ctx context.Context, yield func(*ledger.Item) bool) error

// Tally is a count and an amount in fen.
type Tally struct {
	Count  int   `json:"count"`
	Amount int64 `json:"amount"`
}

// add counts one row of amount fen.
func (t *Tally) add(amount int64) {
	t.Count++
	t.Amount += amount
}

// Summary is <id>.json: a campaign's figures, computed from its ledger
// items when the report is written.
type Summary struct {
	CampaignID string `json:"campaign_id"`
	// State and Reason are the campaign's, not the rows'.
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`

	// Rows and Amount (fen) are the items read and their total.
	Rows   int   `json:"rows"`
	Amount int64 `json:"amount"`
	// States counts the rows and their amounts by ledger state; only the
	// states present are listed.
	States map[ledger.State]Tally `json:"states"`
	// Failures counts by err_code the rows WeChat refused: those in state
	// FAILED, and those not paid whose last answer carried an err_code.
	// A FAILED row without one (failed on gethbinfo's word) is counted
	// under NoErrCode.
	Failures map[string]Tally `json:"failures"`
	// Paid is the rows WeChat accepted: SENT, RECEIVED and REFUNDED.
	Paid Tally `json:"paid"`
	// Sent is the rows tried at least once.
	Sent int `json:"sent"`

	// StartedAt and FinishedAt are the campaign's.
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// FirstTryAt and LastTryAt are the earliest and the latest first try
	// of a row, the span RatePerS is measured over.
	FirstTryAt time.Time `json:"first_try_at,omitzero"`
	LastTryAt  time.Time `json:"last_try_at,omitzero"`
	// RatePerS is the achieved send rate: the first tries after the
	// earliest one per second up to the latest one, (n-1)/span, to the
	// thousandth; 0 with fewer than two tries or no span.
	RatePerS float64 `json:"rate_per_s"`

	GeneratedAt time.Time `json:"generated_at"`
}

// NoErrCode is the Failures key of FAILED rows whose last answer carried
// no err_code.
const NoErrCode = "(none)"

// maxListedFailures is how many failed rows the HTML page lists: enough to
// see a pattern; the CSV has them all.
const maxListedFailures = 50

// bucketWidths are the widths (ms) the sends chart picks from, smallest
// first: each divides the next, so that buckets aligned on multiples of
// one merge exactly into buckets of the next. 6 h and 1 day are there
// for campaigns paused over days, so that the chart stays within
// maxBars.
var bucketWidths = []int64{
	1_000, 10_000, 60_000, 600_000, 3_600_000, 6 * 3_600_000, 24 * 3_600_000,
}

// maxBars is the most bars the sends chart has, unless the span exceeds
// maxBars days.
const maxBars = 120

// histogram counts first tries per bucket of the smallest width of
// bucketWidths that spans them in at most maxBars bars. It coarsens as
// the span grows, so that it holds at most about maxBars counts whatever
// the number of rows, and ends at the width the final span needs: a
// width that fits the final span fitted every smaller one before it.
type histogram struct {
	w        int // index into bucketWidths
	min, max int64
	n        int
	counts   map[int64]int // bucket (ms / width) → first tries
}

// add counts a first try at ms (Unix milliseconds).
func (h *histogram) add(ms int64) {
	if h.counts == nil {
		h.counts = make(map[int64]int)
	}
	if h.n == 0 || ms < h.min {
		h.min = ms
	}
	if h.n == 0 || ms > h.max {
		h.max = ms
	}
	h.n++
	for h.w < len(bucketWidths)-1 && h.bars(bucketWidths[h.w]) > maxBars {
		old, next := bucketWidths[h.w], bucketWidths[h.w+1]
		merged := make(map[int64]int, len(h.counts))
		for k, c := range h.counts {
			merged[floorDiv(k*old, next)] += c
		}
		h.counts = merged
		h.w++
	}
	h.counts[floorDiv(ms, bucketWidths[h.w])]++
}

// bars is the number of buckets of width w from min to max.
func (h *histogram) bars(w int64) int64 {
	return floorDiv(h.max, w) - floorDiv(h.min, w) + 1
}

// width is the histogram's bucket width.
func (h *histogram) width() time.Duration {
	return time.Duration(bucketWidths[h.w]) * time.Millisecond
}

// floorDiv is a/b rounded down, for times before 1970 too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// failedRow is a row the HTML page lists among the failures.
type failedRow struct {
	Row                      int
	Billno, OpenID, ErrCode  string
	State                    ledger.State
	Amount                   int64
	ErrCodeDes, StatusReason string
}

// report accumulates what one pass over the rows yields: the CSV and the
// aggregates, nothing per row beyond the CSV's bytes and a few listed
// failures.
type report struct {
	csv    bytes.Buffer
	w      *csv.Writer
	record []string

	sum    Summary
	sends  histogram
	failed []failedRow
}

// csvHeader is the report CSV's header.
var csvHeader = []string{"row", "mch_billno", "re_openid", "total_amount", "state", "err_code", "send_listid"}

// NotSent is the report's state of a row the campaign never sent: in the
// ledger RECORDED with no try (a cancelled or paused campaign's rest), so
// that it reads apart from a RECORDED row whose send died mid-call.
const NotSent ledger.State = "NOT_SENT"

// reportState is a row's state as the report shows it.
func reportState(it *ledger.Item) ledger.State {
	if it.State == ledger.Recorded && it.Attempts == 0 {
		return NotSent
	}
	return it.State
}

// add records one item.
func (r *report) add(it *ledger.Item) error {
	raw := it.Fields["total_amount"]
	amount, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		// The check validated every row's amount and the ledger keeps the
		// fields as signed: an unreadable one is not a figure to guess.
		return fmt.Errorf("row %d (%s): total_amount %q: %w", it.CampaignRow, it.MchBillno, raw, err)
	}
	state := reportState(it)
	r.record = append(r.record[:0],
		strconv.Itoa(it.CampaignRow), it.MchBillno, it.Fields["re_openid"], raw,
		string(state), it.ErrCode, it.SendListID)
	if err := r.w.Write(r.record); err != nil {
		return fmt.Errorf("row %d: csv: %w", it.CampaignRow, err)
	}

	s := &r.sum
	s.Rows++
	s.Amount += amount
	t := s.States[state]
	t.add(amount)
	s.States[state] = t
	if it.State.Paid() {
		s.Paid.add(amount)
	}
	if it.State == ledger.Failed || (it.ErrCode != "" && !it.State.Paid()) {
		code := it.ErrCode
		if code == "" {
			code = NoErrCode
		}
		t := s.Failures[code]
		t.add(amount)
		s.Failures[code] = t
		if len(r.failed) < maxListedFailures {
			r.failed = append(r.failed, failedRow{
				Row: it.CampaignRow, Billno: it.MchBillno, OpenID: maskOpenID(it.Fields["re_openid"]),
				ErrCode: code, State: it.State, Amount: amount,
				ErrCodeDes: it.ErrCodeDes, StatusReason: it.Reason,
			})
		}
	}
	// A planned row is recorded without a try: it counts as sent once a
	// send took it (Attempts) and stamped its first try.
	if it.Attempts > 0 && !it.FirstTriedAt.IsZero() {
		s.Sent++
		r.sends.add(it.FirstTriedAt.UnixMilli())
	}
	return nil
}

// finish completes the summary once every row is read.
func (r *report) finish() {
	s := &r.sum
	if h := &r.sends; h.n > 0 {
		s.FirstTryAt = time.UnixMilli(h.min).UTC()
		s.LastTryAt = time.UnixMilli(h.max).UTC()
		if span := h.max - h.min; h.n >= 2 && span > 0 {
			rate := float64(h.n-1) / (float64(span) / 1000)
			s.RatePerS = math.Round(rate*1000) / 1000
		}
	}
}

// WriteReport reads a campaign's rows once and writes its report through
// sink: <id>.csv, one line per row; <id>.json, the Summary; and <id>.html,
// a page of the figures and charts for people, without any full openid.
// The CSV and the JSON are written first, so that a failure on the page
// leaves the data. now is the report's generation time. It returns the
// summary written.
//
// Only the CSV grows with the rows (about 100 bytes each); everything
// else is aggregates, so 100,000 rows fit a small Lambda.
func WriteReport(ctx context.Context, sink Sink, c *Campaign, rows Rows, now time.Time) (*Summary, error) {
	r := &report{
		sum: Summary{
			CampaignID:  c.ID,
			State:       c.State,
			Reason:      c.Reason,
			States:      make(map[ledger.State]Tally),
			Failures:    make(map[string]Tally),
			StartedAt:   utc(c.StartedAt),
			FinishedAt:  utc(c.FinishedAt),
			GeneratedAt: utc(now),
		},
		record: make([]string, 0, len(csvHeader)),
	}
	// Sized for the file's rows at once: growing by doubling would
	// allocate about twice the CSV again, copy by copy.
	r.csv.Grow(min(max(c.Rows, 0), maxPresizedRows) * csvRowEstimate)
	r.w = csv.NewWriter(&r.csv)
	if err := r.w.Write(csvHeader); err != nil {
		return nil, fmt.Errorf("campaign %s: report: csv: %w", c.ID, err)
	}
	var addErr error
	err := rows(ctx, func(it *ledger.Item) bool {
		addErr = r.add(it)
		return addErr == nil
	})
	if err == nil {
		err = addErr
	}
	if err != nil {
		return nil, fmt.Errorf("campaign %s: report: %w", c.ID, err)
	}
	r.w.Flush()
	if err := r.w.Error(); err != nil {
		return nil, fmt.Errorf("campaign %s: report: csv: %w", c.ID, err)
	}
	r.finish()

	js, err := json.MarshalIndent(&r.sum, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("campaign %s: report: json: %w", c.ID, err)
	}
	if err := put(ctx, sink, c.ID+".csv", contentTypeCSV, r.csv.Bytes()); err != nil {
		return nil, fmt.Errorf("campaign %s: report: %w", c.ID, err)
	}
	if err := put(ctx, sink, c.ID+".json", contentTypeJSON, append(js, '\n')); err != nil {
		return nil, fmt.Errorf("campaign %s: report: %w", c.ID, err)
	}
	page, err := r.html(c)
	if err != nil {
		return nil, fmt.Errorf("campaign %s: report: html: %w", c.ID, err)
	}
	if err := put(ctx, sink, c.ID+".html", contentTypeHTML, page); err != nil {
		return nil, fmt.Errorf("campaign %s: report: %w", c.ID, err)
	}
	return &r.sum, nil
}

// put writes one file through sink.
func put(ctx context.Context, sink Sink, name, contentType string, body []byte) error {
	if err := sink.Put(ctx, name, contentType, body); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	return nil
}

// csvRowEstimate is about the bytes of one CSV line: a row number, a
// 28-character billno and openid, an amount, a state, an err_code and a
// 32-character send_listid. maxPresizedRows bounds the buffer sized ahead,
// against a wrong row count.
const (
	csvRowEstimate  = 112
	maxPresizedRows = 1_000_000
)

// The reports' content types.
const (
	contentTypeCSV  = "text/csv; charset=utf-8"
	contentTypeJSON = "application/json"
	contentTypeHTML = "text/html; charset=utf-8"
)

// maxListedErrors is how many of a refused file's errors its HTML page
// lists; the CSV and the JSON have them all.
const maxListedErrors = 200

// WriteRefusal writes a refused file's report through sink: <id>.json
// (the campaign, its rows, every row error and their count), <id>.csv
// (row,field,message, one line per error) and <id>.html (the count and
// the first errors). The JSON and the CSV are written first. The errors
// are encoded one by one into a buffer, so that 100,000 of them cost
// little more than their text.
func WriteRefusal(ctx context.Context, sink Sink, c *Campaign, errs []RowError, now time.Time) error {
	var js bytes.Buffer
	head := struct {
		CampaignID string `json:"campaign_id"`
		State      State  `json:"state"`
		Reason     string `json:"reason,omitempty"`
		Rows       int    `json:"rows"`
		ErrorCount int    `json:"error_count"`
		// GeneratedAt is last, ahead of the errors appended below.
		GeneratedAt time.Time `json:"generated_at"`
	}{c.ID, Refused, c.Reason, c.Rows, len(errs), utc(now)}
	b, err := json.MarshalIndent(head, "", "  ")
	if err != nil {
		return fmt.Errorf("campaign %s: refusal: json: %w", c.ID, err)
	}
	// Open the object again after its last field to append "errors",
	// which MarshalIndent of the whole would hold twice (once compact,
	// once indented).
	js.Write(b[:len(b)-2]) // without "\n}"
	js.WriteString(",\n  \"errors\": [")
	enc := json.NewEncoder(&js)
	for i := range errs {
		if i > 0 {
			js.WriteByte(',')
		}
		js.WriteString("\n    ")
		if err := enc.Encode(&errs[i]); err != nil {
			return fmt.Errorf("campaign %s: refusal: json: %w", c.ID, err)
		}
		js.Truncate(js.Len() - 1) // Encode's newline
	}
	if len(errs) > 0 {
		js.WriteString("\n  ")
	}
	js.WriteString("]\n}\n")

	var cb bytes.Buffer
	w := csv.NewWriter(&cb)
	record := []string{"row", "field", "message"}
	if err := w.Write(record); err != nil {
		return fmt.Errorf("campaign %s: refusal: csv: %w", c.ID, err)
	}
	for _, e := range errs {
		record = append(record[:0], strconv.Itoa(e.Row), e.Field, e.Message)
		if err := w.Write(record); err != nil {
			return fmt.Errorf("campaign %s: refusal: csv: %w", c.ID, err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("campaign %s: refusal: csv: %w", c.ID, err)
	}

	if err := put(ctx, sink, c.ID+".json", contentTypeJSON, js.Bytes()); err != nil {
		return fmt.Errorf("campaign %s: refusal: %w", c.ID, err)
	}
	if err := put(ctx, sink, c.ID+".csv", contentTypeCSV, cb.Bytes()); err != nil {
		return fmt.Errorf("campaign %s: refusal: %w", c.ID, err)
	}
	page, err := refusalHTML(c, errs, now)
	if err != nil {
		return fmt.Errorf("campaign %s: refusal: html: %w", c.ID, err)
	}
	if err := put(ctx, sink, c.ID+".html", contentTypeHTML, page); err != nil {
		return fmt.Errorf("campaign %s: refusal: %w", c.ID, err)
	}
	return nil
}

// utc is t in UTC, or zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// maskOpenID keeps an openid's first 4 and last 4 characters, for pages
// that get forwarded: enough to tell rows apart and find them in the CSV,
// not enough to address the user. A short one is masked whole.
func maskOpenID(id string) string {
	r := []rune(id)
	if len(r) <= 8 {
		return "…"
	}
	return string(r[:4]) + "…" + string(r[len(r)-4:])
}
