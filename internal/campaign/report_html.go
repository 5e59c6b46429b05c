package campaign

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// errCodeMeanings says in a few words what WeChat's common refusals of a
// red packet mean, for the report's failures table.
var errCodeMeanings = map[string]string{
	"NOTENOUGH":        "The merchant's balance is too low: top it up, then resume.",
	"SENDNUM_LIMIT":    "The user has received as many red packets from the merchant today as allowed.",
	"RCVDAMOUNT_LIMIT": "The user has received as much from the merchant today as allowed.",
	"SENDAMOUNT_LIMIT": "The merchant has sent as much today as its API security settings allow.",
	"MONEY_LIMIT":      "The amount is outside the range the product settings allow.",
	"FREQ_LIMIT":       "Too many requests per second: WeChat's rate limit.",
	"OPENID_ERROR":     "The openid does not belong to the wxappid.",
	"NO_AUTH":          "Refused: the caller's IP is not allowlisted, or WeChat's risk control blocked the user.",
	"PARAM_ERROR":      "A field of the request is invalid.",
	"SEND_FAILED":      "The send failed; only a new billno can be sent.",
	"SYSTEMERROR":      "Not a refusal: WeChat's outcome is not known yet; the reconciler settles the row.",
	"PROCESSING":       "Not a refusal: WeChat is still processing; the reconciler settles the row.",
	NoErrCode:          "Failed on WeChat's record (gethbinfo), without an err_code: see the reason.",
}

// stateOrder is the order states are shown in: not yet settled, paid,
// not paid, for a person. States outside it follow, sorted.
var stateOrder = []ledger.State{
	NotSent, ledger.Recorded, ledger.Unknown, ledger.Sent, ledger.Received, ledger.Refunded,
	ledger.Failed, ledger.Expired, ledger.NeedsAttention,
}

// stateClass is the CSS class that colours a state; the template's style
// defines one per state of stateOrder.
func stateClass(s ledger.State) string {
	if slices.Contains(stateOrder, s) {
		return "s-" + string(s)
	}
	return "s-other"
}

// yuan formats fen as yuan with two decimals and thousands separators:
// 123450 is "¥1,234.50".
func yuan(fen int64) string {
	sign := ""
	u := uint64(fen)
	if fen < 0 {
		sign, u = "-", uint64(-fen)
	}
	return fmt.Sprintf("%s¥%s.%02d", sign, thousands(u/100), u%100)
}

// thousands formats n with a comma every three digits.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// showTime formats a time for people, in UTC; "" when zero.
func showTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// percent formats part of whole as a percentage with one decimal.
func percent(part, whole int64) string {
	if whole == 0 {
		return "0.0%"
	}
	return strconv.FormatFloat(float64(part)*100/float64(whole), 'f', 1, 64) + "%"
}

// The page's view of the report: every figure formatted, every SVG
// coordinate computed, so that the template only places them.
type (
	pageData struct {
		Campaign                   *Campaign
		Sum                        *Summary
		Amount, PaidAmount         string
		Generated, Started, Ended  string
		FirstTry, LastTry          string
		Rate, TargetRate           string
		States                     []stateView
		CountBar, AmountBar        []segment
		Failures                   []failureView
		FailedRows                 []failedRowView
		FailedListed, FailedTotal  int
		Chart                      *chartView
		PaidCountPct, PaidAmtPct   string
		SentPct                    string
		UnsettledCount             int
		UnsettledAmount            string
		FailedCount                int
		FailedAmount               string
		NeedsAttentionCount        int
		NeedsAttentionAmount       string
		CampaignRows, CampaignPlan int
	}
	stateView struct {
		State               ledger.State
		Class               string
		Count               int
		Amount              string
		CountPct, AmountPct string
	}
	segment struct {
		X, W  string
		Class string
		Title string
	}
	failureView struct {
		Code, Meaning string
		Count         int
		Amount        string
	}
	failedRowView struct {
		Row             int
		Billno, OpenID  string
		Amount          string
		State           ledger.State
		ErrCode, Detail string
	}
	chartView struct {
		Bars           []barView
		XTicks, YTicks []tickView
		Bucket         string
		Left, Right    int
		Top, Bottom    int
		Width, Height  int
		XLabelX        int
		XLabelY        int
		YLabelY        int
		TickEnd        int
		Max            int
	}
	barView struct {
		X, Y, W, H string
		Title      string
	}
	tickView struct {
		Pos   string
		Label string
	}
)

// f formats an SVG coordinate.
func f(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// html renders the report page.
func (r *report) html(c *Campaign) ([]byte, error) {
	s := &r.sum
	d := &pageData{
		Campaign:   c,
		Sum:        s,
		Amount:     yuan(s.Amount),
		PaidAmount: yuan(s.Paid.Amount),
		Generated:  showTime(s.GeneratedAt),
		Started:    showTime(s.StartedAt),
		Ended:      showTime(s.FinishedAt),
		FirstTry:   showTime(s.FirstTryAt),
		LastTry:    showTime(s.LastTryAt),
		Rate:       strconv.FormatFloat(s.RatePerS, 'f', -1, 64),

		PaidCountPct: percent(int64(s.Paid.Count), int64(s.Rows)),
		PaidAmtPct:   percent(s.Paid.Amount, s.Amount),
		SentPct:      percent(int64(s.Sent), int64(s.Rows)),
		CampaignRows: c.Rows,
		CampaignPlan: c.Planned,
	}
	if c.Rate > 0 {
		d.TargetRate = strconv.FormatFloat(c.Rate, 'f', -1, 64)
	}
	var unsettled, failed, attention Tally
	for st, t := range s.States {
		switch {
		case st == ledger.Failed || st == ledger.Expired:
			failed.Count += t.Count
			failed.Amount += t.Amount
		case st == ledger.NeedsAttention:
			attention = t
		case !st.Final() && !st.Paid():
			unsettled.Count += t.Count
			unsettled.Amount += t.Amount
		}
	}
	d.UnsettledCount, d.UnsettledAmount = unsettled.Count, yuan(unsettled.Amount)
	d.FailedCount, d.FailedAmount = failed.Count, yuan(failed.Amount)
	d.NeedsAttentionCount, d.NeedsAttentionAmount = attention.Count, yuan(attention.Amount)

	states := make([]ledger.State, 0, len(s.States))
	for st := range s.States {
		states = append(states, st)
	}
	slices.SortFunc(states, func(a, b ledger.State) int {
		ia, ib := slices.Index(stateOrder, a), slices.Index(stateOrder, b)
		if ia < 0 {
			ia = len(stateOrder)
		}
		if ib < 0 {
			ib = len(stateOrder)
		}
		return cmp.Or(cmp.Compare(ia, ib), cmp.Compare(a, b))
	})
	var cx, ax float64
	for _, st := range states {
		t := s.States[st]
		v := stateView{
			State: st, Class: stateClass(st), Count: t.Count, Amount: yuan(t.Amount),
			CountPct: percent(int64(t.Count), int64(s.Rows)), AmountPct: percent(t.Amount, s.Amount),
		}
		d.States = append(d.States, v)
		// The bars are 1000 units wide; a state's share is its width.
		if s.Rows > 0 {
			w := 1000 * float64(t.Count) / float64(s.Rows)
			d.CountBar = append(d.CountBar, segment{f(cx), f(w), v.Class,
				fmt.Sprintf("%s: %d of %d rows (%s)", st, t.Count, s.Rows, v.CountPct)})
			cx += w
		}
		if s.Amount > 0 {
			w := 1000 * float64(t.Amount) / float64(s.Amount)
			d.AmountBar = append(d.AmountBar, segment{f(ax), f(w), v.Class,
				fmt.Sprintf("%s: %s (%s)", st, v.Amount, v.AmountPct)})
			ax += w
		}
	}

	codes := make([]string, 0, len(s.Failures))
	for code := range s.Failures {
		codes = append(codes, code)
	}
	// The largest first: the one to act on.
	slices.SortFunc(codes, func(a, b string) int {
		return cmp.Or(cmp.Compare(s.Failures[b].Count, s.Failures[a].Count), cmp.Compare(a, b))
	})
	for _, code := range codes {
		t := s.Failures[code]
		d.Failures = append(d.Failures, failureView{code, errCodeMeanings[code], t.Count, yuan(t.Amount)})
		d.FailedTotal += t.Count
	}
	for _, fr := range r.failed {
		detail := fr.ErrCodeDes
		if detail == "" {
			detail = fr.StatusReason
		}
		d.FailedRows = append(d.FailedRows, failedRowView{
			Row: fr.Row, Billno: fr.Billno, OpenID: fr.OpenID, Amount: yuan(fr.Amount),
			State: fr.State, ErrCode: fr.ErrCode, Detail: detail,
		})
	}
	d.FailedListed = len(d.FailedRows)
	d.Chart = r.sends.chart()

	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// chart lays out the sends-over-time bar chart: one bar per bucket from
// the first try's to the last's, empty buckets included, so that pauses
// show as gaps. Nil when nothing was tried.
func (h *histogram) chart() *chartView {
	if h.n == 0 {
		return nil
	}
	w := bucketWidths[h.w]
	first, last := floorDiv(h.min, w), floorDiv(h.max, w)
	n := int(last - first + 1)
	top := 0
	for _, c := range h.counts {
		top = max(top, c)
	}
	ymax := niceCeil(top)
	cv := &chartView{
		Width: 760, Height: 280, Left: 64, Right: 744, Top: 16, Bottom: 224,
		Bucket: bucketName(h.width()), Max: top,
	}
	cv.XLabelX = (cv.Left + cv.Right) / 2
	cv.XLabelY = cv.Height - 12
	cv.YLabelY = (cv.Top + cv.Bottom) / 2
	cv.TickEnd = cv.Bottom + 4
	pw, ph := float64(cv.Right-cv.Left), float64(cv.Bottom-cv.Top)
	bw := pw / float64(n)
	gap := bw * 0.15
	for i := range n {
		k := first + int64(i)
		c := h.counts[k]
		if c == 0 {
			continue
		}
		bh := ph * float64(c) / float64(ymax)
		at := time.UnixMilli(k * w).UTC()
		cv.Bars = append(cv.Bars, barView{
			X: f(float64(cv.Left) + float64(i)*bw + gap/2), W: f(bw - gap),
			Y: f(float64(cv.Bottom) - bh), H: f(bh),
			Title: fmt.Sprintf("%s: %d", at.Format(bucketLayout(w, true)), c),
		})
	}
	// At most about six time labels, on whole buckets.
	step := max(1, (n+5)/6)
	for i := 0; i < n; i += step {
		at := time.UnixMilli((first + int64(i)) * w).UTC()
		cv.XTicks = append(cv.XTicks, tickView{
			Pos:   f(float64(cv.Left) + float64(i)*bw),
			Label: at.Format(bucketLayout(w, i == 0)),
		})
	}
	// 0, the top, and the middle when it is a whole count.
	yticks := []int{0, ymax}
	if ymax%2 == 0 {
		yticks = []int{0, ymax / 2, ymax}
	}
	for _, v := range yticks {
		cv.YTicks = append(cv.YTicks, tickView{
			Pos:   f(float64(cv.Bottom) - ph*float64(v)/float64(ymax)),
			Label: strconv.Itoa(v),
		})
	}
	return cv
}

// niceCeil is the least of 1, 2, 5 times a power of ten at or above n,
// the chart's top.
func niceCeil(n int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

// bucketName names a bucket width for the chart's axis.
func bucketName(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d day", int(d/(24*time.Hour)))
}

// bucketLayout is the time layout of a chart label for buckets of w ms;
// full adds the date.
func bucketLayout(w int64, full bool) string {
	var l string
	switch {
	case w < 60_000:
		l = "15:04:05"
	case w < 24*3_600_000:
		l = "15:04"
	default:
		return "2006-01-02"
	}
	if full {
		l = "2006-01-02 " + l
	}
	return l
}

// refusalData is the refusal page's view.
type refusalData struct {
	Campaign  *Campaign
	Errors    []RowError
	Count     int
	More      int
	Generated string
}

// refusalHTML renders a refused file's page: the count and the first
// maxListedErrors errors.
func refusalHTML(c *Campaign, errs []RowError, now time.Time) ([]byte, error) {
	d := &refusalData{Campaign: c, Errors: errs, Count: len(errs), Generated: showTime(now)}
	if len(errs) > maxListedErrors {
		d.Errors, d.More = errs[:maxListedErrors], len(errs)-maxListedErrors
	}
	var b bytes.Buffer
	if err := refusalTemplate.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// pageStyle is the pages' inline CSS: plain, readable on screen and on
// paper, with the states' colours printed as shown.
const pageStyle = `
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"PingFang SC","Microsoft YaHei",sans-serif;color:#1f2328;margin:24px auto;max-width:980px;padding:0 16px;-webkit-print-color-adjust:exact;print-color-adjust:exact}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a}.reason{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:4px}
.state{font-weight:600;padding:1px 8px;border-radius:10px;background:#eaeef2}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border-bottom:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#57606a;font-size:12px}
svg text{font-size:11px;fill:#57606a}svg .axis{stroke:#8c959f;stroke-width:1}svg .grid{stroke:#eaeef2;stroke-width:1}
svg .bar{fill:#0969da}.stack{width:100%;height:22px;display:block;margin:2px 0 10px}.sw{width:12px;height:12px;vertical-align:-1px}
.s-NOT_SENT{fill:#eaeef2}.s-RECORDED{fill:#d0d7de}.s-UNKNOWN{fill:#bf8700}.s-SENT{fill:#54aeff}.s-RECEIVED{fill:#1a7f37}.s-REFUNDED{fill:#8250df}
.s-FAILED{fill:#cf222e}.s-EXPIRED{fill:#6e7781}.s-NEEDS_ATTENTION{fill:#fb8500}.s-other{fill:#24292f}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
footer{margin-top:32px;color:#57606a;font-size:12px}
@media print{body{margin:0;max-width:none;font-size:11pt}section,table,svg{break-inside:avoid}h2{break-after:avoid}}
`

// reportTemplate is the campaign report page. It holds no script and no
// URL: the page is a file that gets forwarded and printed.
var reportTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Campaign {{.Sum.CampaignID}}: {{.Sum.State}}</title>
<style>` + pageStyle + `</style>
</head>
<body>
<header>
<h1>Campaign <code>{{.Sum.CampaignID}}</code> <span class="state">{{.Sum.State}}</span></h1>
<p class="meta">Merchant {{.Campaign.MchID}}{{if .Started}} · started {{.Started}}{{end}}{{if .Ended}} · finished {{.Ended}}{{end}} · report of {{.Generated}}</p>
{{with .Sum.Reason}}<p class="reason">Reason: {{.}}</p>{{end}}
</header>

<section>
<h2>Totals</h2>
<div class="cards">
<div class="card"><span>Rows</span><b>{{.Sum.Rows}}</b><span>amount {{.Amount}}</span></div>
<div class="card"><span>Paid (SENT, RECEIVED, REFUNDED)</span><b>{{.Sum.Paid.Count}}</b><span>{{.PaidAmount}} · {{.PaidCountPct}} of rows, {{.PaidAmtPct}} of the amount</span></div>
<div class="card"><span>Sent at least once</span><b>{{.Sum.Sent}}</b><span>{{.SentPct}} of rows</span></div>
<div class="card"><span>Failed or expired (not paid)</span><b>{{.FailedCount}}</b><span>{{.FailedAmount}}</span></div>
<div class="card"><span>Not settled yet</span><b>{{.UnsettledCount}}</b><span>{{.UnsettledAmount}}</span></div>
{{if .NeedsAttentionCount}}<div class="card"><span>Needs attention</span><b>{{.NeedsAttentionCount}}</b><span>{{.NeedsAttentionAmount}}</span></div>{{end}}
</div>
<p class="meta">The file has {{.CampaignRows}} rows, {{.CampaignPlan}} recorded in the ledger. Achieved rate {{.Rate}}/s{{if .TargetRate}} (set: {{.TargetRate}}/s){{end}}{{if .FirstTry}}, first tries from {{.FirstTry}} to {{.LastTry}}{{end}}.</p>
</section>

<section>
<h2>Sends over time</h2>
{{with .Chart}}
<svg viewBox="0 0 {{.Width}} {{.Height}}" width="100%" role="img" aria-label="First tries per {{.Bucket}}">
{{range .YTicks}}<line class="grid" x1="{{$.Chart.Left}}" x2="{{$.Chart.Right}}" y1="{{.Pos}}" y2="{{.Pos}}"/>
<text x="{{$.Chart.Left}}" dx="-6" y="{{.Pos}}" dy="4" text-anchor="end">{{.Label}}</text>
{{end}}{{range .Bars}}<rect class="bar" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"><title>{{.Title}}</title></rect>
{{end}}<line class="axis" x1="{{.Left}}" x2="{{.Right}}" y1="{{.Bottom}}" y2="{{.Bottom}}"/>
<line class="axis" x1="{{.Left}}" x2="{{.Left}}" y1="{{.Top}}" y2="{{.Bottom}}"/>
{{range .XTicks}}<line class="axis" x1="{{.Pos}}" x2="{{.Pos}}" y1="{{$.Chart.Bottom}}" y2="{{$.Chart.TickEnd}}"/>
<text x="{{.Pos}}" y="{{$.Chart.Bottom}}" dy="16">{{.Label}}</text>
{{end}}<text x="{{.XLabelX}}" y="{{.XLabelY}}" text-anchor="middle">time (UTC), one bar per {{.Bucket}}</text>
<text transform="translate(14,{{.YLabelY}}) rotate(-90)" text-anchor="middle">first tries per {{.Bucket}}</text>
</svg>
<p class="meta">Each bar counts the rows first tried in its {{.Bucket}}; the busiest had {{.Max}}. Gaps are pauses.</p>
{{else}}<p>No row has been sent yet.</p>{{end}}
</section>

<section>
<h2>By state</h2>
{{if .States}}
<div class="meta">Rows</div>
<svg class="stack" viewBox="0 0 1000 22" preserveAspectRatio="none" role="img" aria-label="Rows by state">{{range .CountBar}}<rect class="{{.Class}}" x="{{.X}}" y="0" width="{{.W}}" height="22"><title>{{.Title}}</title></rect>{{end}}</svg>
<div class="meta">Amount</div>
<svg class="stack" viewBox="0 0 1000 22" preserveAspectRatio="none" role="img" aria-label="Amount by state">{{range .AmountBar}}<rect class="{{.Class}}" x="{{.X}}" y="0" width="{{.W}}" height="22"><title>{{.Title}}</title></rect>{{end}}</svg>
<table>
<thead><tr><th>State</th><th class="n">Rows</th><th class="n">%</th><th class="n">Amount</th><th class="n">%</th></tr></thead>
<tbody>
{{range .States}}<tr><td><svg class="sw" viewBox="0 0 12 12"><rect class="{{.Class}}" width="12" height="12"/></svg> {{.State}}</td><td class="n">{{.Count}}</td><td class="n">{{.CountPct}}</td><td class="n">{{.Amount}}</td><td class="n">{{.AmountPct}}</td></tr>
{{end}}<tr><th>Total</th><th class="n">{{.Sum.Rows}}</th><th class="n"></th><th class="n">{{.Amount}}</th><th class="n"></th></tr>
</tbody>
</table>
{{else}}<p>No row is recorded in the ledger yet.</p>{{end}}
</section>

<section>
<h2>Failures by err_code</h2>
{{if .Failures}}
<table>
<thead><tr><th>err_code</th><th class="n">Rows</th><th class="n">Amount</th><th>Meaning</th></tr></thead>
<tbody>
{{range .Failures}}<tr><td><code>{{.Code}}</code></td><td class="n">{{.Count}}</td><td class="n">{{.Amount}}</td><td>{{.Meaning}}</td></tr>
{{end}}</tbody>
</table>
{{if .FailedRows}}
<h2>Rows with a failure{{if lt .FailedListed .FailedTotal}} (the first {{.FailedListed}} of {{.FailedTotal}}; all are in {{.Sum.CampaignID}}.csv){{end}}</h2>
<table>
<thead><tr><th class="n">Row</th><th>mch_billno</th><th>re_openid</th><th class="n">Amount</th><th>State</th><th>err_code</th><th>Detail</th></tr></thead>
<tbody>
{{range .FailedRows}}<tr><td class="n">{{.Row}}</td><td><code>{{.Billno}}</code></td><td><code>{{.OpenID}}</code></td><td class="n">{{.Amount}}</td><td>{{.State}}</td><td><code>{{.ErrCode}}</code></td><td>{{.Detail}}</td></tr>
{{end}}</tbody>
</table>
{{end}}
{{else}}<p>No row failed.</p>{{end}}
</section>

<footer>Openids are shown masked; {{.Sum.CampaignID}}.csv has every row in full and {{.Sum.CampaignID}}.json these figures.</footer>
</body>
</html>
`))

// refusalTemplate is a refused file's page.
var refusalTemplate = template.Must(template.New("refusal").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Campaign {{.Campaign.ID}}: REFUSED</title>
<style>` + pageStyle + `</style>
</head>
<body>
<header>
<h1>Campaign <code>{{.Campaign.ID}}</code> <span class="state">REFUSED</span></h1>
<p class="meta">Merchant {{.Campaign.MchID}} · report of {{.Generated}}</p>
{{with .Campaign.Reason}}<p class="reason">Reason: {{.}}</p>{{end}}
</header>
<section>
<h2>{{.Count}} errors in {{.Campaign.Rows}} rows</h2>
<p>The file was refused whole: nothing was recorded and nothing was sent. Correct the rows and submit the file again.</p>
{{if .Errors}}
<table>
<thead><tr><th class="n">Row</th><th>Field</th><th>Error</th></tr></thead>
<tbody>
{{range .Errors}}<tr><td class="n">{{.Row}}</td><td>{{if .Field}}<code>{{.Field}}</code>{{end}}</td><td>{{.Message}}</td></tr>
{{end}}</tbody>
</table>
{{if .More}}<p>… and {{.More}} more: {{.Campaign.ID}}.csv lists every error.</p>{{end}}
{{end}}
</section>
</body>
</html>
`))
