package campaign

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// API is the WeChat API every campaign row is sent with: the normal cash
// red packet. Mini-program red packets need the receiver's page open, and
// group red packets are closed to new merchants at WeChat.
const API = "sendredpack"

// MaxRows is the most rows a file may have.
const MaxRows = 1_000_000

// RowError is why one row of a file is refused: its row number (1 for
// the first row after a CSV header, or the first line of JSONL; 0 for the
// header or the settings), the field at fault (empty for the row as a
// whole) and the reason.
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

// ParseSettings decodes a settings document strictly: exact member names,
// no unknown or repeated member.
func ParseSettings(data []byte) (Settings, error) {
	var s Settings
	if err := json.Unmarshal(data, &s, json.RejectUnknownMembers(true)); err != nil {
		return Settings{}, fmt.Errorf("campaign: settings: %w", err)
	}
	return s, nil
}

// check reports the first thing wrong with the settings themselves, as a
// RowError of row 0: every row would fail alike.
func (s Settings) check() *RowError {
	if s.CampaignID != "" && !validID(s.CampaignID) {
		return &RowError{Field: "campaign_id", Message: "settings: must be 1 to 64 of A-Z, a-z, 0-9, _ and -"}
	}
	if s.Rate < 0 || s.Rate != s.Rate {
		return &RowError{Field: "rate", Message: "settings: must be a positive number of sends per second"}
	}
	// A row that only needs the settings: what fails here fails for all.
	probe := Row{ReOpenID: "oSettingsProbe", TotalAmount: 100}
	if err := probe.request(s, "1").Validate(); err != nil {
		var verr *wxpay.ValidationError
		if errors.As(err, &verr) {
			return &RowError{Field: verr.Field, Message: "settings: " + verr.Reason}
		}
		return &RowError{Message: "settings: " + err.Error()}
	}
	return nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Row is one row of a campaign file, under WeChat's field names.
type Row struct {
	// Number is the row's number, from 1.
	Number int `json:"-"`
	// MchBillno is the row's own billno; empty derives one (Billno).
	MchBillno   string `json:"mch_billno,omitempty"`
	ReOpenID    string `json:"re_openid"`
	TotalAmount int64  `json:"total_amount"`
	Wishing     string `json:"wishing,omitempty"`
	Remark      string `json:"remark,omitempty"`
	SceneID     string `json:"scene_id,omitempty"`
}

// request is the sendredpack the row becomes with billno.
func (r *Row) request(s Settings, billno string) *wxpay.SendRequest {
	or := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	return &wxpay.SendRequest{
		MchBillno: billno, WxAppID: s.WxAppID, SendName: s.SendName, ReOpenID: r.ReOpenID,
		TotalAmount: r.TotalAmount, TotalNum: 1, Wishing: or(r.Wishing, s.Wishing), ClientIP: s.ClientIP,
		ActName: s.ActName, Remark: or(r.Remark, s.Remark), SceneID: or(r.SceneID, s.SceneID),
	}
}

// Billno returns the billno of row number n of the campaign id when the
// row gives none: 18 hex digits of a hash of the merchant and the
// campaign, then the row number in 10 digits, 28 characters in all
// (WeChat's most). The same campaign's row gets the same billno every
// time; another campaign's billnos share no prefix with it but by chance.
func Billno(mchID, campaignID string, n int) string {
	h := sha256.Sum256([]byte("wxredpack campaign billno\x00" + mchID + "\x00" + campaignID))
	return fmt.Sprintf("%s%010d", hex.EncodeToString(h[:9]), n)
}

// Checked is what Check found in a file.
type Checked struct {
	// ID is the campaign's id: the settings' campaign_id, or the first 20
	// hex digits of Identity.
	ID string
	// Identity is the hex SHA-256 of the merchant, the settings (without
	// rate and campaign_id) and every row in order: the same rows with the
	// same settings, in CSV or JSONL, under any file name, have the same
	// Identity.
	Identity string
	// RowsIdentity is the hex SHA-256 of the merchant and the rows
	// alone, whatever the settings.
	RowsIdentity string
	Rows         int
	Amount       int64
	// Errors are the invalid rows, in order; the file is refused when
	// there is any.
	Errors []RowError
}

// Check reads a campaign file once, streaming, and validates every row as
// the sendredpack it becomes for merchant mchID: nothing is recorded and
// nothing sent. A given mch_billno must appear once in the file.
// The error is for a file that cannot be read at all; a file with invalid
// rows has Errors.
func Check(r io.Reader, s Settings, mchID string) (*Checked, error) {
	c := &Checked{}
	id := newIdentity(mchID, s)
	if err := s.check(); err != nil {
		c.Errors = append(c.Errors, *err)
		id.refuse(*err)
		c.Identity, c.RowsIdentity = id.String(), id.Rows()
		c.ID = s.CampaignID
		if c.ID == "" || !validID(c.ID) {
			c.ID = c.Identity[:20]
		}
		return c, nil
	}
	billnos := make(map[string]int)
	err := readRows(r, func(row Row, rerr *RowError) bool {
		if row.Number > 0 { // not the header
			c.Rows++
		}
		if c.Rows > MaxRows {
			c.Errors = append(c.Errors, RowError{Row: row.Number, Message: fmt.Sprintf("the file has more than %d rows", MaxRows)})
			return false
		}
		if rerr == nil {
			rerr = row.check(s, billnos)
		}
		if rerr != nil {
			c.Errors = append(c.Errors, *rerr)
			// A refused file is not the same campaign as the file with
			// its bad rows fixed or deleted.
			id.refuse(*rerr)
			return true
		}
		c.Amount += row.TotalAmount
		id.add(row)
		return true
	})
	if err != nil {
		return nil, err
	}
	if c.Rows == 0 && len(c.Errors) == 0 {
		c.Errors = append(c.Errors, RowError{Message: "the file has no rows"})
	}
	c.Identity, c.RowsIdentity = id.String(), id.Rows()
	c.ID = s.CampaignID
	if c.ID == "" {
		c.ID = c.Identity[:20]
	}
	return c, nil
}

// check validates one parsed row: its request, and a given billno's
// uniqueness in the file.
func (r *Row) check(s Settings, billnos map[string]int) *RowError {
	billno := r.MchBillno
	if billno == "" {
		billno = "1" // derived later: always valid
	}
	if err := r.request(s, billno).Validate(); err != nil {
		var verr *wxpay.ValidationError
		if errors.As(err, &verr) {
			return &RowError{Row: r.Number, Field: verr.Field, Message: verr.Reason}
		}
		return &RowError{Row: r.Number, Message: err.Error()}
	}
	if r.MchBillno != "" {
		if first, ok := billnos[r.MchBillno]; ok {
			return &RowError{Row: r.Number, Field: "mch_billno", Message: fmt.Sprintf("is also row %d's: one billno pays once", first)}
		}
		billnos[r.MchBillno] = r.Number
	}
	return nil
}

// columns are a file's known columns; re_openid and total_amount are
// required.
var columns = map[string]bool{"mch_billno": true, "re_openid": true, "total_amount": true, "wishing": true, "remark": true, "scene_id": true}

// readRows streams the rows of a CSV file with a header, or of a JSONL
// file (told apart by the first character that is not blank: '{' starts
// JSONL), to yield, with the row's problem when it cannot be read. A
// header that is wrong stops the file with one RowError of row 0. yield
// returns false to stop. The error is a read error.
func readRows(r io.Reader, yield func(Row, *RowError) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	// A UTF-8 byte order mark, as spreadsheet programs write.
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	for {
		b, err := br.Peek(1)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("campaign: read the file: %w", err)
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			br.Discard(1)
			continue
		case '{':
			return readJSONL(br, yield)
		}
		return readCSV(br, yield)
	}
}

func readJSONL(br *bufio.Reader, yield func(Row, *RowError) bool) error {
	n := 0
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			n++
			row := Row{Number: n}
			var rerr *RowError
			switch {
			case !utf8.Valid(line):
				rerr = &RowError{Row: n, Message: "not valid UTF-8"}
			default:
				if jerr := json.Unmarshal(bytes.TrimSpace(line), &row, json.RejectUnknownMembers(true)); jerr != nil {
					rerr = &RowError{Row: n, Field: jsonField(jerr), Message: jsonMessage(jerr)}
				}
				row.Number = n
			}
			if !yield(row, rerr) {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("campaign: read the file: %w", err)
		}
	}
}

// jsonField names the member a JSON error is about, if it says.
func jsonField(err error) string {
	var serr *json.SemanticError
	if errors.As(err, &serr) {
		return strings.TrimPrefix(string(serr.JSONPointer), "/")
	}
	return ""
}

func jsonMessage(err error) string {
	var serr *json.SemanticError
	if errors.As(err, &serr) && serr.Err != nil {
		return serr.Err.Error()
	}
	if errors.As(err, &serr) && serr.JSONKind != 0 {
		kind := serr.JSONKind.String()
		if name, ok := kindNames[kind]; ok {
			kind = name
		}
		return "has the wrong type: " + kind
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// kindNames names JSON's kinds as a person would.
var kindNames = map[string]string{`"`: "string", "0": "number", "t": "boolean", "f": "boolean", "n": "null", "{": "object", "[": "array"}

func readCSV(br *bufio.Reader, yield func(Row, *RowError) bool) error {
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil
		}
		yield(Row{}, &RowError{Message: "header: " + err.Error()})
		return nil
	}
	index := make(map[string]int, len(header))
	for i, name := range header {
		name = strings.TrimSpace(name)
		if !columns[name] {
			yield(Row{}, &RowError{Field: name, Message: "header: unknown column (known: mch_billno, re_openid, total_amount, wishing, remark, scene_id)"})
			return nil
		}
		if _, dup := index[name]; dup {
			yield(Row{}, &RowError{Field: name, Message: "header: column given twice"})
			return nil
		}
		index[name] = i
	}
	for _, name := range []string{"re_openid", "total_amount"} {
		if _, ok := index[name]; !ok {
			yield(Row{}, &RowError{Field: name, Message: "header: required column missing"})
			return nil
		}
	}
	for n := 1; ; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		row := Row{Number: n}
		var rerr *RowError
		var perr *csv.ParseError
		switch {
		case errors.As(err, &perr):
			rerr = &RowError{Row: n, Message: perr.Err.Error()}
		case err != nil:
			return fmt.Errorf("campaign: read the file: %w", err)
		default:
			rerr = row.fromCSV(rec, index)
		}
		if !yield(row, rerr) {
			return nil
		}
	}
}

func (r *Row) fromCSV(rec []string, index map[string]int) *RowError {
	get := func(name string) string {
		if i, ok := index[name]; ok {
			return rec[i]
		}
		return ""
	}
	for _, v := range rec {
		if !utf8.ValidString(v) {
			return &RowError{Row: r.Number, Message: "not valid UTF-8"}
		}
	}
	r.MchBillno, r.ReOpenID = get("mch_billno"), get("re_openid")
	r.Wishing, r.Remark, r.SceneID = get("wishing"), get("remark"), get("scene_id")
	amount := get("total_amount")
	n, err := strconv.ParseInt(amount, 10, 64)
	if err != nil || amount == "" || amount[0] == '+' || amount[0] == '-' && n >= 0 {
		return &RowError{Row: r.Number, Field: "total_amount", Message: fmt.Sprintf("must be a whole number of fen, got %q", amount)}
	}
	r.TotalAmount = n
	return nil
}

// ErrRefused is Plan's error when rows' billnos are recorded in the
// ledger with other requests or other rows: the campaign is refused, and
// its rows are never sent.
var ErrRefused = errors.New("campaign: refused")

// planWorkers is how many rows are recorded at once.
const planWorkers = 16

// plan records the rows of c's file after row c.Planned in the ledger, as
// planned items, never tried: each row under its billno, with the
// campaign's id and its row number. It calls checkpoint with the last row
// up to which every row is recorded, about once a second.
//
// It reads the file twice. First it checks, recording nothing, that the
// file is still the one Check read (its identity: the version Check read,
// or the object as it is now if it was uploaded again since), and that no
// row's own mch_billno is recorded for another request or another
// campaign's row; either refuses the campaign (the RowErrors, with
// ErrRefused), so that a refused file leaves nothing in the ledger. Then
// it records the rows, reading exactly the version it checked. A row
// already recorded for the same campaign row with the same request is
// kept as it is (a plan that stopped midway goes on).
func plan(ctx context.Context, c *Campaign, src Source, store ledger.Store, now func() time.Time, checkpoint func(planned int) error) ([]RowError, error) {
	rc, version, err := src.Open(ctx, c.ETag)
	if errors.Is(err, ErrChanged) {
		// Uploaded again (the same bytes get a new ETag under SSE-KMS):
		// the identity says whether it is still the file checked.
		rc, version, err = src.Open(ctx, "")
	}
	if err != nil {
		return nil, fmt.Errorf("campaign %s: open the file: %w", c.ID, err)
	}
	id := newIdentity(c.MchID, c.Settings)
	conflicts, err := rowPass{
		id: &id,
		// A derived billno is the campaign's own: only given ones are
		// looked up.
		need: func(row Row) bool { return row.MchBillno != "" },
		do: func(row Row) (*RowError, error) {
			old, err := store.Get(ctx, ledger.Key{MchID: c.MchID, MchBillno: row.MchBillno})
			if errors.Is(err, ledger.ErrNotFound) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			return taken(c, row, old), nil
		},
	}.run(ctx, c, rc, now)
	rc.Close()
	changed := []RowError{{Message: "the file changed since it was checked: start it again"}}
	switch {
	case errors.As(err, new(*RowError)):
		return changed, fmt.Errorf("campaign %s: the file changed since it was checked: %w", c.ID, ErrRefused)
	case err != nil:
		return nil, fmt.Errorf("campaign %s: plan: %w", c.ID, err)
	case id.String() != c.Identity:
		return changed, fmt.Errorf("campaign %s: the file changed since it was checked: %w", c.ID, ErrRefused)
	case len(conflicts) > 0:
		return conflicts, fmt.Errorf("campaign %s: %d rows' billnos are recorded otherwise: %w", c.ID, len(conflicts), ErrRefused)
	}

	rc, _, err = src.Open(ctx, version)
	if err != nil {
		return nil, fmt.Errorf("campaign %s: open the file: %w", c.ID, err)
	}
	defer rc.Close()
	conflicts, err = rowPass{
		need:       func(row Row) bool { return row.Number > c.Planned },
		do:         func(row Row) (*RowError, error) { return record(ctx, c, row, store, now()) },
		checkpoint: checkpoint,
	}.run(ctx, c, rc, now)
	switch {
	case errors.As(err, new(*RowError)):
		return changed, fmt.Errorf("campaign %s: the file changed since it was checked: %w", c.ID, ErrRefused)
	case err != nil:
		return nil, fmt.Errorf("campaign %s: plan: %w", c.ID, err)
	case len(conflicts) > 0:
		// Recorded by another since the check: rare, and these rows
		// stay recorded, never tried.
		return conflicts, fmt.Errorf("campaign %s: %d rows' billnos are recorded otherwise: %w", c.ID, len(conflicts), ErrRefused)
	}
	return nil, nil
}

// rowPass is one pass over a campaign file.
type rowPass struct {
	// id, when set, hashes every row into the campaign's identity.
	id *identity
	// need picks the rows do is called for.
	need func(Row) bool
	// do is called for the rows needed, planWorkers at a time, in
	// batches; it returns a row's problem, or an error that stops the
	// pass.
	do func(Row) (*RowError, error)
	// checkpoint, when set, gets the last row of a batch without a
	// RowError, about once a second and at the end.
	checkpoint func(last int) error
}

// run streams the file through the pass and returns the RowErrors do
// found, in row order. A row that cannot be read is returned as the
// error (a *RowError).
func (p rowPass) run(ctx context.Context, c *Campaign, r io.Reader, now func() time.Time) ([]RowError, error) {
	var (
		mu        sync.Mutex
		found     []RowError
		firstErr  error
		batch     []Row
		lastSaved = now()
	)
	flush := func() error {
		var wg sync.WaitGroup
		sem := make(chan struct{}, planWorkers)
		for _, row := range batch {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				rerr, err := p.do(row)
				mu.Lock()
				defer mu.Unlock()
				if rerr != nil {
					found = append(found, *rerr)
				}
				if err != nil && firstErr == nil {
					firstErr = err
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		last := batch[len(batch)-1].Number
		batch = batch[:0]
		if p.checkpoint != nil && len(found) == 0 && (now().Sub(lastSaved) >= time.Second || last == c.Rows) {
			lastSaved = now()
			return p.checkpoint(last)
		}
		return nil
	}
	var err error
	readErr := readRows(r, func(row Row, rerr *RowError) bool {
		if rerr != nil {
			err = rerr
			return false
		}
		if p.id != nil {
			p.id.add(row)
		}
		if !p.need(row) {
			return ctx.Err() == nil
		}
		batch = append(batch, row)
		if len(batch) == 4*planWorkers {
			if err = flush(); err != nil {
				return false
			}
		}
		return ctx.Err() == nil
	})
	if err == nil && readErr == nil && len(batch) > 0 {
		err = flush()
	}
	err = firstError(firstError(readErr, err), ctx.Err())
	slices.SortFunc(found, func(a, b RowError) int { return a.Row - b.Row })
	return found, err
}

// record writes one row's planned item, or finds it recorded already by
// an earlier plan of the same campaign.
func record(ctx context.Context, c *Campaign, row Row, store ledger.Store, now time.Time) (*RowError, error) {
	billno := row.MchBillno
	if billno == "" {
		billno = Billno(c.MchID, c.ID, row.Number)
	}
	fields := row.request(c.Settings, billno).Fields(c.MchID)
	it := &ledger.Item{
		MchID: c.MchID, MchBillno: billno, API: API, Fields: fields, RecordedAt: now,
		Source: LedgerSource, CampaignID: c.ID, CampaignRow: row.Number,
	}
	err := store.Create(ctx, it)
	if !errors.Is(err, ledger.ErrExists) {
		return nil, err
	}
	old, err := store.Get(ctx, it.Key())
	if err != nil {
		return nil, err
	}
	return taken(c, row, old), nil
}

// taken is the RowError of a row whose billno the ledger holds as old,
// nil when old is that very row of the campaign, with its request.
func taken(c *Campaign, row Row, old *ledger.Item) *RowError {
	billno := old.MchBillno
	if old.Hash == ledger.Hash(API, row.request(c.Settings, billno).Fields(c.MchID)) && old.CampaignID == c.ID && old.CampaignRow == row.Number {
		return nil
	}
	msg := "mch_billno " + billno + " is recorded with another request"
	if old.CampaignID != "" {
		msg = fmt.Sprintf("mch_billno %s is recorded for campaign %s row %d", billno, old.CampaignID, old.CampaignRow)
	}
	return &RowError{Row: row.Number, Field: "mch_billno", Message: msg}
}

// LedgerSource is the ledger's Source of a campaign's red packets.
const LedgerSource = "campaign"

// identity hashes what makes a campaign: the merchant, the settings that
// go into its requests, and its rows in order; and apart, the merchant
// and the rows alone.
type identity struct{ h, rows hash.Hash }

func newIdentity(mchID string, s Settings) identity {
	s.Rate, s.CampaignID = 0, "" // pacing and naming: not the payments
	b, _ := json.Marshal(s)
	id := identity{sha256.New(), sha256.New()}
	fmt.Fprintf(id.h, "wxredpack campaign v1\x00%s\x00%s\n", mchID, b)
	fmt.Fprintf(id.rows, "wxredpack campaign rows v1\x00%s\n", mchID)
	return id
}

func (id identity) add(r Row) {
	b, _ := json.Marshal(r)
	for _, h := range []hash.Hash{id.h, id.rows} {
		h.Write(b)
		h.Write([]byte{'\n'})
	}
}

func (id identity) refuse(e RowError) {
	for _, h := range []hash.Hash{id.h, id.rows} {
		fmt.Fprintf(h, "refused\x00%d\x00%s\x00%s\n", e.Row, e.Field, e.Message)
	}
}

func (id identity) String() string { return hex.EncodeToString(id.h.Sum(nil)) }

// Rows is the hash of the merchant and the rows alone.
func (id identity) Rows() string { return hex.EncodeToString(id.rows.Sum(nil)) }
