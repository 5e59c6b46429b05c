package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/reconcile"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// campaignOptions are the campaign mode's arguments and flags.
type campaignOptions struct {
	// file is the campaign file (CSV or JSONL) and settings its settings
	// JSON file.
	file, settings string
	// out is the reports' folder.
	out string
	// rps is the simulator's limit of requests per second (0: none) and
	// balance the merchant's balance there, in fen.
	rps     int
	balance int64
	// rate, when positive, overrides the settings' rate.
	rate float64
	// rateLimit is WeChat's limit as the engine knows it
	// (Engine.RateLimit); 0 takes rps.
	rateLimit int
}

// campaignAPIReserve is the sends per second the campaign leaves to API
// sends, as the deployed runner's engine does.
const campaignAPIReserve = 10

// maxPrintedErrors is how many of a refused file's bad rows are printed;
// the refusal report has them all.
const maxPrintedErrors = 20

// loadCampaign reads the settings of opts, with -rate applied, and checks
// that its file exists: Start reads both, but a missing file is better
// told before the simulated world starts.
func loadCampaign(opts campaignOptions) (campaign.Settings, error) {
	if _, err := os.Stat(opts.file); err != nil {
		return campaign.Settings{}, fmt.Errorf("the campaign file: %w", err)
	}
	data, err := os.ReadFile(opts.settings)
	if err != nil {
		return campaign.Settings{}, fmt.Errorf("the campaign settings: %w", err)
	}
	s, err := campaign.ParseSettings(data)
	if err != nil {
		return campaign.Settings{}, fmt.Errorf("%s: %w", opts.settings, err)
	}
	if opts.rate > 0 {
		s.Rate = opts.rate
	}
	return s, nil
}

// runCampaignMode runs the campaign of opts with settings s against the
// simulator of env, which it first gives WeChat's rate limit and the
// merchant's balance.
func runCampaignMode(ctx context.Context, opts campaignOptions, s campaign.Settings, env *environment, stdout io.Writer) error {
	env.sim.SetLimits(wxpaytest.Limits{RequestsPerSecond: opts.rps})
	env.sim.SetBalance(opts.balance)
	limit := "no limit of requests per second"
	if opts.rps > 0 {
		limit = fmt.Sprintf("%d requests/s (FREQ_LIMIT beyond)", opts.rps)
	}
	fmt.Fprintf(stdout, "WeChat's limits       %s, balance %s yuan\n", limit, yuan(opts.balance))

	rateLimit := opts.rateLimit
	if rateLimit <= 0 {
		rateLimit = opts.rps
	}
	cr, err := newCampaigner(ctx, env, opts.out, rateLimit, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Reports               %s\n\n", cr.folder)
	return cr.run(ctx, opts.file, s)
}

// campaigner runs campaigns with one engine, over the environment's
// ledger and one memory campaign store: a file run twice by the same
// campaigner is the same campaign, and pays nothing the second time.
type campaigner struct {
	env    *environment
	engine *campaign.Engine
	// folder is the reports' folder, absolute.
	folder   string
	out      io.Writer
	progress *progress
}

// newCampaigner builds the engine as the deployed runner does: WeChat
// through the merchant's credentials from the Secrets Manager secret
// (handler.SettingsFromEnv, credstore.FromEnv, reconcile.Merchant), the
// functions' JSON logger; only the stores are the memory ones, and the
// reports go to folder, which it creates. rateLimit is WeChat's limit of
// sends per second for the merchant (campaign.DefaultRateLimit when 0).
func newCampaigner(ctx context.Context, env *environment, folder string, rateLimit int, out io.Writer) (*campaigner, error) {
	abs, err := filepath.Abs(folder)
	if err != nil {
		return nil, fmt.Errorf("the reports' folder: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("the reports' folder: %w", err)
	}
	p := newProgress(out, env.clock.Now)
	// The log lines go through the progress printer, so that a warning
	// does not land in the middle of the redrawn progress line.
	logger := handler.NewLogger(p, os.Getenv("AWS_LAMBDA_LOG_LEVEL"))
	settings, err := handler.SettingsFromEnv(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	creds, err := credstore.FromEnv(ctx, settings.NewClient, logger)
	if err != nil {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	engine := &campaign.Engine{
		Campaigns: campaign.NewMemory(),
		Ledger:    env.ledger,
		Window:    campaign.NewMemoryWindow(),
		WeChat:    reconcile.Merchant{Store: creds},
		Open: func(path string) (campaign.Source, error) {
			return campaign.LocalFile{Path: path}, nil
		},
		Reports:    campaign.Dir(abs),
		RateLimit:  rateLimit,
		APIReserve: campaignAPIReserve,
		// The simulator's clock: the engine's seconds of sending are the
		// seconds the simulator counts its rate limit in.
		Now:      env.clock.Now,
		Logger:   logger,
		Progress: p.update,
	}
	return &campaigner{env: env, engine: engine, folder: abs, out: out, progress: p}, nil
}

// run starts the campaign of file with settings s and runs it until no
// row is left to send or it stops; it prints a summary and the reports'
// paths. A refused file, a paused campaign or an interrupted run is an
// error, with the reports written all the same.
func (cr *campaigner) run(ctx context.Context, file string, s campaign.Settings) error {
	started, err := cr.engine.Start(ctx, file, s)
	if err != nil {
		return err
	}
	c := started.Campaign
	out := cr.out
	fmt.Fprintf(out, "campaign %s  %s: %s rows, %s yuan, at %s/s\n",
		c.ID, file, commas(int64(c.Rows)), yuan(c.Amount), strconv.FormatFloat(c.Rate, 'f', -1, 64))
	if started.Existing {
		fmt.Fprintf(out, "the same file with the same settings was started before: nothing is paid again (the campaign is %s)\n", c.State)
	}
	if c.State == campaign.Refused && len(started.Errors) > 0 {
		return cr.refused(c, started.Errors)
	}

	cr.progress.reset()
	stalled := 0
	for c.State == campaign.Planning || c.State == campaign.Running {
		if ctx.Err() != nil {
			break
		}
		before := *c
		c, err = cr.engine.Run(ctx, c.ID)
		if err != nil && ctx.Err() == nil {
			cr.progress.end()
			return fmt.Errorf("campaign %s: %w", before.ID, err)
		}
		if c == nil {
			c = &before
		}
		// Run returns when the campaign is done or stops; a run that
		// moved nothing and left it going would be run again forever.
		if c.State == before.State && c.Planned == before.Planned && c.Cursor == before.Cursor && ctx.Err() == nil {
			if stalled++; stalled >= 3 {
				cr.progress.end()
				return fmt.Errorf("campaign %s stays %s at row %d: its runs make no progress", c.ID, c.State, c.Cursor)
			}
		} else {
			stalled = 0
		}
	}
	cr.progress.end()

	if c.State == campaign.Refused {
		// Planning found rows' billnos recorded with other requests; the
		// engine wrote the refusal report.
		fmt.Fprintf(out, "REFUSED: %s\n", c.Reason)
		cr.printPaths(c.ID)
		return fmt.Errorf("campaign %s refused: %s", c.ID, c.Reason)
	}
	// The engine writes the reports when the campaign is done; they are
	// written again here so that a paused, cancelled, interrupted or
	// repeated campaign has them too, and for the summary's figures.
	sum, err := campaign.WriteReport(context.WithoutCancel(ctx), cr.engine.Reports, c, campaign.LedgerRows(cr.env.ledger, c.ID), cr.engine.Now())
	if err != nil {
		return err
	}
	switch {
	case c.State == campaign.Done:
		cr.printSummary(c, sum)
		cr.printPaths(c.ID)
		return nil
	case c.State == campaign.Paused:
		fmt.Fprintf(out, "PAUSED after %s of %s rows: %s\n", commas(int64(c.Cursor)), commas(int64(c.Rows)), c.Reason)
		fmt.Fprintf(out, "  %s\n", pauseAdvice(c.Reason))
		cr.printFigures(sum)
		cr.printPaths(c.ID)
		return fmt.Errorf("campaign %s paused: %s", c.ID, c.Reason)
	case ctx.Err() != nil:
		fmt.Fprintf(out, "INTERRUPTED after %s of %s rows: the sends in flight ended; nothing more is sent (the campaign is %s)\n",
			commas(int64(c.Cursor)), commas(int64(c.Rows)), c.State)
		cr.printFigures(sum)
		cr.printPaths(c.ID)
		return fmt.Errorf("campaign %s interrupted: %w", c.ID, ctx.Err())
	}
	fmt.Fprintf(out, "%s: %s\n", c.State, c.Reason)
	cr.printFigures(sum)
	cr.printPaths(c.ID)
	return fmt.Errorf("campaign %s is %s: %s", c.ID, c.State, c.Reason)
}

// refused prints a refused file's bad rows and where its refusal report
// is.
func (cr *campaigner) refused(c *campaign.Campaign, errs []campaign.RowError) error {
	fmt.Fprintf(cr.out, "REFUSED: %s\n", c.Reason)
	for i, e := range errs {
		if i == maxPrintedErrors {
			fmt.Fprintf(cr.out, "  ... and %d more\n", len(errs)-maxPrintedErrors)
			break
		}
		fmt.Fprintf(cr.out, "  %s\n", e.Error())
	}
	fmt.Fprintln(cr.out, "Fix the rows and start the file again.")
	cr.printPaths(c.ID)
	return fmt.Errorf("campaign %s refused: %d invalid rows; nothing was sent", c.ID, len(errs))
}

// printSummary prints a done campaign's figures.
func (cr *campaigner) printSummary(c *campaign.Campaign, sum *campaign.Summary) {
	took := "-"
	if !c.StartedAt.IsZero() && !c.FinishedAt.IsZero() {
		took = c.FinishedAt.Sub(c.StartedAt).Round(100 * time.Millisecond).String()
	}
	fmt.Fprintf(cr.out, "DONE in %s: no row is left to send\n", took)
	cr.printFigures(sum)
	fmt.Fprintf(cr.out, "  achieved  %.1f sends/s (campaign rate %s/s)\n", sum.RatePerS, strconv.FormatFloat(c.Rate, 'f', -1, 64))
}

// printFigures prints the rows by outcome.
func (cr *campaigner) printFigures(sum *campaign.Summary) {
	failed, unknown := sum.States[ledger.Failed], sum.States[ledger.Unknown]
	fmt.Fprintf(cr.out, "  rows      %6s  %14s yuan\n", commas(int64(sum.Rows)), yuan(sum.Amount))
	fmt.Fprintf(cr.out, "  paid      %6s  %14s yuan\n", commas(int64(sum.Paid.Count)), yuan(sum.Paid.Amount))
	fmt.Fprintf(cr.out, "  failed    %6s  %14s yuan%s\n", commas(int64(failed.Count)), yuan(failed.Amount), byCode(sum.Failures))
	settles := ""
	if unknown.Count > 0 {
		settles = "  (the reconciler settles these)"
	}
	fmt.Fprintf(cr.out, "  unknown   %6s  %14s yuan%s\n", commas(int64(unknown.Count)), yuan(unknown.Amount), settles)
	if notSent := sum.States[ledger.Recorded]; notSent.Count > 0 {
		fmt.Fprintf(cr.out, "  not sent  %6s  %14s yuan\n", commas(int64(notSent.Count)), yuan(notSent.Amount))
	}
}

// byCode lists the failures by err_code, most first: "  (MONEY_LIMIT 2,
// NOTENOUGH 1)".
func byCode(failures map[string]campaign.Tally) string {
	if len(failures) == 0 {
		return ""
	}
	codes := make([]string, 0, len(failures))
	for code := range failures {
		codes = append(codes, code)
	}
	slices.SortFunc(codes, func(a, b string) int {
		if d := failures[b].Count - failures[a].Count; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(codes))
	for i, code := range codes {
		parts[i] = fmt.Sprintf("%s %d", code, failures[code].Count)
	}
	return "  (" + strings.Join(parts, ", ") + ")"
}

// printPaths prints the reports' folder and the three reports of id.
func (cr *campaigner) printPaths(id string) {
	fmt.Fprintf(cr.out, "Reports in %s:\n", cr.folder)
	for _, ext := range []string{".csv", ".json", ".html"} {
		fmt.Fprintf(cr.out, "  %s\n", filepath.Join(cr.folder, id+ext))
	}
}

// pauseAdvice says what to do about a campaign paused for reason (an
// err_code, a colon, WeChat's message).
func pauseAdvice(reason string) string {
	const resume = "then resume the campaign: the rows not paid are sent again with the same billnos, and none is paid twice."
	code, _, _ := strings.Cut(reason, ":")
	switch code {
	case "NOTENOUGH":
		return "The merchant's balance is too low: top it up, " + resume +
			"\n  Here the simulator ends with this command: run it again with a larger -balance."
	case "SENDAMOUNT_LIMIT":
		return "The merchant's amount for the day is reached: wait for tomorrow or a higher limit, " + resume
	case "paused by request":
		return "Resume it when ready: " + resume
	}
	return "WeChat refused the merchant, not the receivers (its caller IP, product, key, certificate or appid): fix the merchant's configuration, " + resume
}

// progress prints a running campaign's progress: on a terminal one line
// redrawn in place, otherwise a plain line at most once a second. It is
// also the log's writer, so that a log line starts on a line of its own.
type progress struct {
	mu  sync.Mutex
	out io.Writer
	tty bool
	now func() time.Time
	// open is set while a redrawn line is on the screen, width its
	// length; last is when the last plain line was printed.
	open  bool
	width int
	last  time.Time
}

// progressBar is the bar's width in characters.
const progressBar = 20

func newProgress(out io.Writer, now func() time.Time) *progress {
	return &progress{out: out, tty: isTerminal(out), now: now}
}

// isTerminal reports whether w is a terminal: a character device, as
// os.Stdout is in an interactive shell.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// update prints c's progress; the engine calls it at every checkpoint,
// about once a second.
func (p *progress) update(c *campaign.Campaign) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	perSecond := 0.0
	if elapsed := now.Sub(c.StartedAt).Seconds(); !c.StartedAt.IsZero() && elapsed > 0 {
		perSecond = float64(c.Sent) / elapsed
	}
	if !p.tty {
		if !p.last.IsZero() && now.Sub(p.last) < time.Second {
			return
		}
		p.last = now
		fmt.Fprintf(p.out, "campaign %s: %d/%d rows sent, %.1f/s\n", c.ID, c.Cursor, c.Rows, perSecond)
		return
	}
	filled := 0
	if c.Rows > 0 {
		filled = min(progressBar, c.Cursor*progressBar/c.Rows)
	}
	line := fmt.Sprintf("[%s%s] %s/%s rows  %.1f/s  state %s",
		strings.Repeat("#", filled), strings.Repeat(".", progressBar-filled),
		commas(int64(c.Cursor)), commas(int64(c.Rows)), perSecond, c.State)
	// Spaces over what a longer line before left.
	pad := max(0, p.width-len(line))
	fmt.Fprintf(p.out, "\r%s%s", line, strings.Repeat(" ", pad))
	p.open, p.width = true, len(line)
}

// Write writes a log line, on a line of its own.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked()
	return p.out.Write(b)
}

// reset readies the printer for another campaign.
func (p *progress) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked()
	p.last = time.Time{}
}

// end ends the redrawn line, if any.
func (p *progress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked()
}

func (p *progress) endLocked() {
	if p.open {
		fmt.Fprintln(p.out)
		p.open, p.width = false, 0
	}
}

// yuan formats fen as yuan with thousands separators: "1,234.56".
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%s.%02d", sign, commas(fen/100), fen%100)
}

// commas formats n with thousands separators: "10,000".
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// campaignUsage is what the campaign mode says of missing or extra
// arguments.
const campaignUsage = "campaign takes FILE [SETTINGS]: a CSV or JSONL campaign file and, optionally, its settings JSON file"
