package campaign

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// reportFile is a file a reportSink received.
type reportFile struct {
	contentType string
	body        []byte
}

// reportSink is a Sink that keeps what it is given, in order; failOn
// makes Put of that name fail.
type reportSink struct {
	files  map[string]reportFile
	order  []string
	failOn string
}

var errReportSink = errors.New("sink down")

func (s *reportSink) Put(_ context.Context, name, contentType string, body []byte) error {
	if name == s.failOn {
		return errReportSink
	}
	if s.files == nil {
		s.files = make(map[string]reportFile)
	}
	s.files[name] = reportFile{contentType, bytes.Clone(body)}
	s.order = append(s.order, name)
	return nil
}

// reportRows yields items in the order given.
func reportRows(items []*ledger.Item) Rows {
	return func(ctx context.Context, yield func(*ledger.Item) bool) error {
		for _, it := range items {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !yield(it) {
				return nil
			}
		}
		return nil
	}
}

// reportT0 is when the test campaigns start.
var reportT0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// openID is a 28-character openid made from n, as WeChat's are long.
func openID(n int) string { return fmt.Sprintf("oUpF8uMuAJO_M2pxb1Q9zNj%05d", n) }

// reportItem is row's ledger item: first tried at reportT0+tried (never
// tried when tried < 0).
func reportItem(row int, amount int64, st ledger.State, code, listID string, tried time.Duration) *ledger.Item {
	it := &ledger.Item{
		MchID: "1900000109", MchBillno: fmt.Sprintf("1900000109202603010%09d", row), API: "sendredpack",
		Fields: map[string]string{
			"re_openid": openID(row), "total_amount": strconv.FormatInt(amount, 10), "mch_billno": "x",
		},
		State: st, ErrCode: code, SendListID: listID,
		CampaignID: "spring", CampaignRow: row, Source: "campaign",
		RecordedAt: reportT0.Add(-time.Hour),
	}
	if tried >= 0 {
		it.Attempts, it.Settled = 1, 1
		it.FirstTriedAt = reportT0.Add(tried)
		it.LastTriedAt = it.FirstTriedAt
	}
	return it
}

// reportFixture is a campaign of every state: 10 rows, 9 tried over 10 s.
func reportFixture() (*Campaign, []*ledger.Item) {
	c := &Campaign{
		ID: "spring", MchID: "1900000109", State: Done, Rows: 10, Planned: 10, Rate: 5,
		StartedAt: reportT0.Add(-time.Second), FinishedAt: reportT0.Add(time.Minute),
	}
	failedNoCode := reportItem(8, 50, ledger.Failed, "", "", 5*time.Second)
	failedNoCode.Reason = "用户账号异常"
	items := []*ledger.Item{
		reportItem(1, 100, ledger.Sent, "", "L1", 0),
		reportItem(2, 200, ledger.Received, "", "L2", time.Second),
		reportItem(3, 300, ledger.Failed, "NOTENOUGH", "", 2*time.Second),
		reportItem(4, 150, ledger.Failed, "SENDNUM_LIMIT", "", 3*time.Second),
		reportItem(5, 500, ledger.Unknown, "SYSTEMERROR", "", 4*time.Second),
		reportItem(6, 1000, ledger.Recorded, "", "", -1),
		reportItem(7, 123456, ledger.Refunded, "", "L7", 10*time.Second),
		failedNoCode,
		reportItem(9, 70, ledger.NeedsAttention, "", "", 6*time.Second),
		reportItem(10, 80, ledger.Expired, "", "", 7*time.Second),
	}
	return c, items
}

func TestWriteReportCSV(t *testing.T) {
	c, items := reportFixture()
	var sink reportSink
	if _, err := WriteReport(context.Background(), &sink, c, reportRows(items), reportT0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if want := []string{"spring.csv", "spring.json", "spring.html"}; !slices.Equal(sink.order, want) {
		t.Errorf("files written %v, want %v", sink.order, want)
	}
	f := sink.files["spring.csv"]
	if f.contentType != "text/csv; charset=utf-8" {
		t.Errorf("csv content type %q", f.contentType)
	}
	billno := func(row int) string { return fmt.Sprintf("1900000109202603010%09d", row) }
	want := "row,mch_billno,re_openid,total_amount,state,err_code,send_listid\n"
	for _, l := range [][]string{
		{"1", "100", "SENT", "", "L1"},
		{"2", "200", "RECEIVED", "", "L2"},
		{"3", "300", "FAILED", "NOTENOUGH", ""},
		{"4", "150", "FAILED", "SENDNUM_LIMIT", ""},
		{"5", "500", "UNKNOWN", "SYSTEMERROR", ""},
		{"6", "1000", "NOT_SENT", "", ""},
		{"7", "123456", "REFUNDED", "", "L7"},
		{"8", "50", "FAILED", "", ""},
		{"9", "70", "NEEDS_ATTENTION", "", ""},
		{"10", "80", "EXPIRED", "", ""},
	} {
		row, _ := strconv.Atoi(l[0])
		want += strings.Join([]string{l[0], billno(row), openID(row), l[1], l[2], l[3], l[4]}, ",") + "\n"
	}
	if got := string(f.body); got != want {
		t.Errorf("csv:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteReportSummary(t *testing.T) {
	ms := func(d time.Duration) time.Time { return reportT0.Add(d) }
	fixtureCampaign, fixture := reportFixture()
	now := reportT0.Add(time.Hour)
	sameMs := []*ledger.Item{
		reportItem(1, 100, ledger.Sent, "", "L1", 0),
		reportItem(2, 100, ledger.Sent, "", "L2", 0),
	}
	// Out of order: the rate's span is from the earliest to the latest
	// first try, not the first and last rows'.
	unordered := []*ledger.Item{
		reportItem(1, 100, ledger.Sent, "", "L1", 3*time.Second),
		reportItem(2, 100, ledger.Sent, "", "L2", time.Second),
		reportItem(3, 100, ledger.Sent, "", "L3", 2*time.Second),
	}
	paused := &Campaign{ID: "spring", State: Paused, Reason: "NOTENOUGH: top up the balance"}
	tests := []struct {
		name  string
		c     *Campaign
		items []*ledger.Item
		want  Summary
	}{
		{
			name: "every state", c: fixtureCampaign, items: fixture,
			want: Summary{
				CampaignID: "spring", State: Done, Rows: 10, Amount: 125906,
				States: map[ledger.State]Tally{
					ledger.Sent: {1, 100}, ledger.Received: {1, 200}, ledger.Failed: {3, 500},
					ledger.Unknown: {1, 500}, NotSent: {1, 1000}, ledger.Refunded: {1, 123456},
					ledger.NeedsAttention: {1, 70}, ledger.Expired: {1, 80},
				},
				Failures: map[string]Tally{
					"NOTENOUGH": {1, 300}, "SENDNUM_LIMIT": {1, 150}, "SYSTEMERROR": {1, 500}, NoErrCode: {1, 50},
				},
				Paid: Tally{3, 123756}, Sent: 9,
				StartedAt: ms(-time.Second), FinishedAt: ms(time.Minute),
				FirstTryAt: ms(0), LastTryAt: ms(10 * time.Second),
				RatePerS:    0.8, // 8 sends after the first in 10 s
				GeneratedAt: now,
			},
		},
		{
			name: "no rows", c: paused, items: nil,
			want: Summary{
				CampaignID: "spring", State: Paused, Reason: "NOTENOUGH: top up the balance",
				States: map[ledger.State]Tally{}, Failures: map[string]Tally{}, GeneratedAt: now,
			},
		},
		{
			name: "one try", c: paused, items: fixture[:1],
			want: Summary{
				CampaignID: "spring", State: Paused, Reason: "NOTENOUGH: top up the balance",
				Rows: 1, Amount: 100, States: map[ledger.State]Tally{ledger.Sent: {1, 100}},
				Failures: map[string]Tally{}, Paid: Tally{1, 100}, Sent: 1,
				FirstTryAt: ms(0), LastTryAt: ms(0), GeneratedAt: now,
			},
		},
		{
			name: "two tries in one instant", c: paused, items: sameMs,
			want: Summary{
				CampaignID: "spring", State: Paused, Reason: "NOTENOUGH: top up the balance",
				Rows: 2, Amount: 200, States: map[ledger.State]Tally{ledger.Sent: {2, 200}},
				Failures: map[string]Tally{}, Paid: Tally{2, 200}, Sent: 2,
				FirstTryAt: ms(0), LastTryAt: ms(0), GeneratedAt: now,
			},
		},
		{
			name: "tries out of row order", c: paused, items: unordered,
			want: Summary{
				CampaignID: "spring", State: Paused, Reason: "NOTENOUGH: top up the balance",
				Rows: 3, Amount: 300, States: map[ledger.State]Tally{ledger.Sent: {3, 300}},
				Failures: map[string]Tally{}, Paid: Tally{3, 300}, Sent: 3,
				FirstTryAt: ms(time.Second), LastTryAt: ms(3 * time.Second), RatePerS: 1, GeneratedAt: now,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sink reportSink
			got, err := WriteReport(context.Background(), &sink, tc.c, reportRows(tc.items), now)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("summary:\n%+v\nwant:\n%+v", *got, tc.want)
			}
			f := sink.files["spring.json"]
			if f.contentType != "application/json" {
				t.Errorf("json content type %q", f.contentType)
			}
			var stored Summary
			if err := json.Unmarshal(f.body, &stored); err != nil {
				t.Fatalf("spring.json: %v", err)
			}
			if !reflect.DeepEqual(stored, tc.want) {
				t.Errorf("spring.json holds\n%+v\nwant:\n%+v", stored, tc.want)
			}
		})
	}
}

// TestWriteReportJSONKeys holds <id>.json's names to the contract: the
// keys present, and those omitted when zero.
func TestWriteReportJSONKeys(t *testing.T) {
	c, items := reportFixture()
	tests := []struct {
		name    string
		c       *Campaign
		present []string
		absent  []string
	}{
		{"done", c, []string{
			"campaign_id", "state", "rows", "amount", "states", "failures", "started_at", "finished_at",
			"rate_per_s", "sent", "paid", "generated_at", "first_try_at", "last_try_at",
		}, []string{"reason"}},
		{"paused, never started", &Campaign{ID: "spring", State: Paused, Reason: "paused by a request"},
			[]string{"reason", "states", "failures", "rate_per_s"}, []string{"started_at", "finished_at"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sink reportSink
			if _, err := WriteReport(context.Background(), &sink, tc.c, reportRows(items), reportT0); err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(sink.files["spring.json"].body, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.present {
				if _, ok := m[k]; !ok {
					t.Errorf("%q missing", k)
				}
			}
			for _, k := range tc.absent {
				if v, ok := m[k]; ok {
					t.Errorf("%q present: %s", k, v)
				}
			}
		})
	}
	var sink reportSink
	if _, err := WriteReport(context.Background(), &sink, c, reportRows(items), reportT0); err != nil {
		t.Fatal(err)
	}
	js := string(sink.files["spring.json"].body)
	for _, want := range []string{
		`"FAILED": {` + "\n" + `      "count": 3,` + "\n" + `      "amount": 500`,
		`"started_at": "2026-03-01T09:59:59Z"`,
		`"rate_per_s": 0.8`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("spring.json lacks %q:\n%s", want, js)
		}
	}
}

func TestWriteReportHTML(t *testing.T) {
	c, items := reportFixture()
	c.Reason = "all rows sent <ok>"
	var sink reportSink
	if _, err := WriteReport(context.Background(), &sink, c, reportRows(items), reportT0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f := sink.files["spring.html"]
	if f.contentType != "text/html; charset=utf-8" {
		t.Errorf("html content type %q", f.contentType)
	}
	page := string(f.body)
	for _, banned := range []string{"<script", "http://", "https://", "src=", "href=", "url(", "@import"} {
		if strings.Contains(strings.ToLower(page), banned) {
			t.Errorf("page holds %q", banned)
		}
	}
	for _, it := range items {
		if id := it.Fields["re_openid"]; strings.Contains(page, id) {
			t.Errorf("page holds row %d's full openid %s", it.CampaignRow, id)
		}
	}
	want := []string{
		"<!DOCTYPE html>", "<svg", "spring", "DONE", "all rows sent &lt;ok&gt;",
		"¥1,259.06", // the total
		"¥1,237.56", // paid
		"one bar per 1 s", "first tries per 1 s",
		maskOpenID(openID(3)), "oUpF…0003",
		"Top it up", // NOTENOUGH's meaning
		"用户账号异常",    // the reason of a FAILED row without err_code
	}
	for _, st := range []ledger.State{NotSent, ledger.Sent, ledger.Failed, ledger.Unknown,
		ledger.Received, ledger.Refunded, ledger.Expired, ledger.NeedsAttention} {
		want = append(want, string(st))
	}
	want = append(want, "NOTENOUGH", "SENDNUM_LIMIT", "SYSTEMERROR", NoErrCode)
	for _, w := range want {
		if !strings.Contains(strings.ToLower(page), strings.ToLower(w)) {
			t.Errorf("page lacks %q", w)
		}
	}
	// 11 one-second buckets from 10:00:00 to 10:00:10, bars for the 9
	// that have a first try.
	if n := strings.Count(page, `<rect class="bar"`); n != 9 {
		t.Errorf("%d bars, want 9", n)
	}
	if !strings.HasSuffix(strings.TrimSpace(page), "</html>") {
		t.Error("page does not end with </html>")
	}
}

// TestWriteReportHTMLFailedRows: the page lists the first failed rows,
// openids masked, and says how many there are.
func TestWriteReportHTMLFailedRows(t *testing.T) {
	items := make([]*ledger.Item, 60)
	for i := range items {
		items[i] = reportItem(i+1, 100, ledger.Failed, "FREQ_LIMIT", "", time.Duration(i)*time.Minute)
	}
	var sink reportSink
	c := &Campaign{ID: "spring", State: Done}
	if _, err := WriteReport(context.Background(), &sink, c, reportRows(items), reportT0); err != nil {
		t.Fatal(err)
	}
	page := string(sink.files["spring.html"].body)
	for _, want := range []string{"the first 50 of 60", maskOpenID(openID(50)), "one bar per 1 min", "rate limit"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, maskOpenID(openID(51))) {
		t.Error("page lists row 51")
	}
}

func TestWriteReportErrors(t *testing.T) {
	c, items := reportFixture()
	bad := *items[3]
	bad.Fields = map[string]string{"re_openid": openID(4), "total_amount": "1.50"}
	errRows := errors.New("ledger unavailable")
	tests := []struct {
		name    string
		rows    Rows
		failOn  string
		wantErr error
		want    string
		written []string
	}{
		{"sink", reportRows(items), "spring.html", errReportSink, "put spring.html", []string{"spring.csv", "spring.json"}},
		{"rows", func(context.Context, func(*ledger.Item) bool) error { return errRows }, "", errRows, "ledger unavailable", nil},
		{"amount", reportRows([]*ledger.Item{items[0], &bad, items[5]}), "", strconv.ErrSyntax, `row 4`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := reportSink{failOn: tc.failOn}
			_, err := WriteReport(context.Background(), &sink, c, tc.rows, reportT0)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Errorf("err = %v, want %v containing %q", err, tc.wantErr, tc.want)
			}
			if !slices.Equal(sink.order, tc.written) {
				t.Errorf("written %v, want %v", sink.order, tc.written)
			}
		})
	}
}

// TestWriteReportStopsRows: an unreadable row ends the pass; the rows
// after it are not asked for.
func TestWriteReportStopsRows(t *testing.T) {
	c, items := reportFixture()
	items[1].Fields = map[string]string{"total_amount": ""}
	yielded := 0
	rows := func(ctx context.Context, yield func(*ledger.Item) bool) error {
		for _, it := range items {
			yielded++
			if !yield(it) {
				return nil
			}
		}
		return nil
	}
	if _, err := WriteReport(context.Background(), &reportSink{}, c, rows, reportT0); err == nil {
		t.Fatal("no error for an empty total_amount")
	}
	if yielded != 2 {
		t.Errorf("%d rows yielded, want 2", yielded)
	}
}

// TestReportChart: the bucket is the smallest that spans the first tries
// in at most maxBars bars, and no first try is lost when buckets merge.
func TestReportChart(t *testing.T) {
	tests := []struct {
		span   time.Duration
		bucket string
	}{
		{0, "1 s"},
		{119 * time.Second, "1 s"},
		{120 * time.Second, "10 s"},
		{19 * time.Minute, "10 s"},
		{30 * time.Minute, "1 min"},
		{3 * time.Hour, "10 min"},
		{19 * time.Hour, "10 min"},
		{30 * time.Hour, "1 h"},
		{10 * 24 * time.Hour, "6 h"},
		{60 * 24 * time.Hour, "1 day"},
	}
	for _, tc := range tests {
		t.Run(tc.span.String(), func(t *testing.T) {
			var h histogram
			start := reportT0.UnixMilli()
			// 1000 tries spread over the span, with the last at its end.
			const n = 1000
			for i := range n {
				h.add(start + int64(tc.span/time.Millisecond)*int64(i)/(n-1))
			}
			cv := h.chart()
			if cv.Bucket != tc.bucket {
				t.Errorf("bucket %s, want %s", cv.Bucket, tc.bucket)
			}
			total := 0
			for _, c := range h.counts {
				total += c
			}
			if total != n {
				t.Errorf("%d tries counted, want %d", total, n)
			}
			if bars := h.bars(bucketWidths[h.w]); bars > maxBars {
				t.Errorf("%d bars", bars)
			}
			if len(cv.Bars) > maxBars || len(cv.XTicks) > 7 || len(cv.YTicks) < 2 {
				t.Errorf("%d bars, %d x ticks, %d y ticks", len(cv.Bars), len(cv.XTicks), len(cv.YTicks))
			}
		})
	}
	var h histogram
	if h.chart() != nil {
		t.Error("a chart of no tries")
	}
}

func TestReportFormats(t *testing.T) {
	yuanTests := []struct {
		fen  int64
		want string
	}{
		{0, "¥0.00"}, {5, "¥0.05"}, {100, "¥1.00"}, {123450, "¥1,234.50"},
		{100000000, "¥1,000,000.00"}, {-150, "-¥1.50"},
	}
	for _, tc := range yuanTests {
		if got := yuan(tc.fen); got != tc.want {
			t.Errorf("yuan(%d) = %q, want %q", tc.fen, got, tc.want)
		}
	}
	maskTests := []struct{ id, want string }{
		{"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "oUpF…eS6o"},
		{"123456789", "1234…6789"},
		{"12345678", "…"},
		{"", "…"},
	}
	for _, tc := range maskTests {
		if got := maskOpenID(tc.id); got != tc.want {
			t.Errorf("maskOpenID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
	niceTests := []struct{ n, want int }{{0, 1}, {1, 1}, {2, 2}, {3, 5}, {7, 10}, {11, 20}, {500, 500}, {501, 1000}}
	for _, tc := range niceTests {
		if got := niceCeil(tc.n); got != tc.want {
			t.Errorf("niceCeil(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestWriteRefusal(t *testing.T) {
	c := &Campaign{ID: "spring", MchID: "1900000109", State: Refused, Rows: 1000, Reason: "250 rows are invalid"}
	errs := make([]RowError, 250)
	for i := range errs {
		errs[i] = RowError{Row: i + 1, Field: "total_amount", Message: fmt.Sprintf("%d fen is below 100, \"min\"", i)}
	}
	errs[1].Field = "" // a row as a whole
	tests := []struct {
		name string
		errs []RowError
	}{
		{"250 errors", errs},
		{"no row errors", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sink reportSink
			if err := WriteRefusal(context.Background(), &sink, c, tc.errs, reportT0); err != nil {
				t.Fatal(err)
			}
			if want := []string{"spring.json", "spring.csv", "spring.html"}; !slices.Equal(sink.order, want) {
				t.Errorf("files written %v, want %v", sink.order, want)
			}
			var got struct {
				CampaignID  string     `json:"campaign_id"`
				State       State      `json:"state"`
				Reason      string     `json:"reason"`
				Rows        int        `json:"rows"`
				Errors      []RowError `json:"errors"`
				ErrorCount  int        `json:"error_count"`
				GeneratedAt time.Time  `json:"generated_at"`
			}
			dec := json.NewDecoder(bytes.NewReader(sink.files["spring.json"].body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("spring.json: %v\n%s", err, sink.files["spring.json"].body)
			}
			if got.CampaignID != "spring" || got.State != Refused || got.Rows != 1000 || got.Reason != c.Reason ||
				got.ErrorCount != len(tc.errs) || !got.GeneratedAt.Equal(reportT0) {
				t.Errorf("spring.json: %+v", got)
			}
			if len(got.Errors) != len(tc.errs) || (len(tc.errs) > 0 && !slices.Equal(got.Errors, tc.errs)) {
				t.Errorf("spring.json: %d errors, want %d", len(got.Errors), len(tc.errs))
			}

			records, err := csv.NewReader(bytes.NewReader(sink.files["spring.csv"].body)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(records) != len(tc.errs)+1 || !slices.Equal(records[0], []string{"row", "field", "message"}) {
				t.Fatalf("csv: %d records, header %v", len(records), records[0])
			}
			for i, e := range tc.errs {
				if want := []string{strconv.Itoa(e.Row), e.Field, e.Message}; !slices.Equal(records[i+1], want) {
					t.Errorf("csv line %d = %v, want %v", i+2, records[i+1], want)
				}
			}

			page := string(sink.files["spring.html"].body)
			for _, banned := range []string{"<script", "http://", "https://", "src="} {
				if strings.Contains(page, banned) {
					t.Errorf("page holds %q", banned)
				}
			}
			if want := fmt.Sprintf("%d errors in 1000 rows", len(tc.errs)); !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
			if len(tc.errs) > 0 {
				if n := strings.Count(page, "is below 100"); n != maxListedErrors {
					t.Errorf("page lists %d errors, want %d", n, maxListedErrors)
				}
				if !strings.Contains(page, "… and 50 more") {
					t.Error("page does not say how many more")
				}
			}
		})
	}
}

func ExampleWriteReport() {
	c := &Campaign{ID: "spring", State: Done}
	items := []*ledger.Item{
		{CampaignRow: 1, MchBillno: "B1", State: ledger.Received, Attempts: 1, FirstTriedAt: reportT0,
			Fields: map[string]string{"re_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "total_amount": "100"}},
		{CampaignRow: 2, MchBillno: "B2", State: ledger.Failed, ErrCode: "NOTENOUGH", Attempts: 1, FirstTriedAt: reportT0.Add(time.Second),
			Fields: map[string]string{"re_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6p", "total_amount": "250"}},
	}
	var sink reportSink
	s, err := WriteReport(context.Background(), &sink, c, reportRows(items), reportT0.Add(time.Hour))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sink.order)
	fmt.Printf("%d rows, %d fen, %d paid, failures %v, %.1f/s\n", s.Rows, s.Amount, s.Paid.Count, s.Failures, s.RatePerS)
	// Output:
	// [spring.csv spring.json spring.html]
	// 2 rows, 350 fen, 1 paid, failures map[NOTENOUGH:{1 250}], 1.0/s
}

// BenchmarkWriteReport100k writes the report of 100,000 rows: the bytes
// allocated are what a Lambda needs beyond the items themselves.
func BenchmarkWriteReport100k(b *testing.B) {
	states := []ledger.State{ledger.Received, ledger.Received, ledger.Received, ledger.Sent, ledger.Refunded, ledger.Failed, ledger.Unknown}
	items := make([]*ledger.Item, 100_000)
	for i := range items {
		st := states[i%len(states)]
		code := ""
		if st == ledger.Failed {
			code = []string{"NOTENOUGH", "SENDNUM_LIMIT", "FREQ_LIMIT"}[i%3]
		}
		// 100 sends a second for 1000 s.
		items[i] = reportItem(i+1, int64(100+i%20000), st, code, fmt.Sprintf("1000041701202603010%011d", i), time.Duration(i)*10*time.Millisecond)
	}
	c := &Campaign{ID: "spring", State: Done, Rows: len(items)}
	ctx := context.Background()
	b.ReportAllocs()
	var sink sizeSink
	for b.Loop() {
		if _, err := WriteReport(ctx, &sink, c, reportRows(items), reportT0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sink.csv), "csv-bytes")
}

// sizeSink keeps only the CSV's size, so that the benchmark counts
// WriteReport's allocations and not a copy of its files.
type sizeSink struct{ csv int }

func (s *sizeSink) Put(_ context.Context, name, _ string, body []byte) error {
	if strings.HasSuffix(name, ".csv") {
		s.csv = len(body)
	}
	return nil
}
