package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
)

// campaignEvents is the folder of the campaign samples, from this package.
var campaignEvents = filepath.Join("..", "..", "events", "campaign")

// fast are flags that let the simulator and the engine go well beyond
// WeChat's 30 sends a second, so that a sample takes a fraction of a
// second rather than three.
var fast = []string{"-rps", "500", "-rate-limit", "500"}

// TestCampaign: the campaign mode runs each sample file against the
// simulator and writes its three reports; a file with bad rows is refused
// and names them, nothing sent; an empty balance pauses the campaign with
// advice, and still writes the reports.
func TestCampaign(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string // after "campaign -out DIR"
		// err is a part of the error, empty for none.
		err string
		// out are parts of the output.
		out []string
		// state and paid are the report's; keys are members its JSON has.
		state string
		paid  int
		keys  []string
		// csv is a part of the CSV report.
		csv string
	}{{
		name:  "CSV with the default settings",
		args:  append([]string{"-events", filepath.Join("..", "..", "events"), filepath.Join(campaignEvents, "recipients.csv")}, fast...),
		out:   []string{": 60 rows, 3,010.08 yuan, at 490/s", "DONE in ", "achieved ", "failed         0"},
		state: "DONE", paid: 60,
		keys: []string{"campaign_id", "rows", "states", "started_at", "finished_at", "rate_per_s"},
		csv:  "oxTWIuKL0jFi2YYvLBpEGbpRuHrz,16888,SENT",
	}, {
		// Flags after the arguments, and the settings named.
		name:  "JSONL with its own billnos and scenes",
		args:  append([]string{filepath.Join(campaignEvents, "recipients.jsonl"), filepath.Join(campaignEvents, "settings.json")}, fast...),
		out:   []string{": 5 rows, 1,067.26 yuan", "DONE in "},
		state: "DONE", paid: 5,
		keys: []string{"campaign_id", "rows", "states", "started_at", "finished_at", "rate_per_s"},
		csv:  "CAMP20261123VIP0002,oxTWIuMEZwZNcsFXNkAvtfC40Mae,88800,SENT",
	}, {
		name: "bad rows refused",
		args: append([]string{filepath.Join(campaignEvents, "bad.csv"), filepath.Join(campaignEvents, "settings.json")}, fast...),
		err:  "refused: 2 invalid rows; nothing was sent",
		out: []string{"REFUSED: 2 invalid rows: nothing was sent",
			"  row 2: scene_id: is required when total_amount is below 100 or above 20000 fen\n",
			"  row 4: re_openid: is required\n"},
		state: "REFUSED",
		keys:  []string{"campaign_id", "rows", "error_count", "errors"},
		csv:   "4,re_openid,is required",
	}, {
		name: "an empty balance pauses",
		args: append([]string{"-balance", "0", filepath.Join(campaignEvents, "recipients.jsonl"), filepath.Join(campaignEvents, "settings.json")}, fast...),
		err:  "paused: NOTENOUGH",
		out: []string{"balance 0.00 yuan", "PAUSED after 0 of 5 rows: NOTENOUGH", "top it up, then resume the campaign",
			"run it again with a larger -balance", "paid           0"},
		state: "PAUSED", paid: 0,
		keys: []string{"campaign_id", "rows", "states", "started_at"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var out strings.Builder
			err := run(t.Context(), append([]string{"campaign", "-out", dir}, tc.args...), &out, io.Discard)
			text := out.String()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("run: %v\n%s", err, text)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("run = %v, want an error with %q\n%s", err, tc.err, text)
			}
			for _, want := range tc.out {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}

			// The three reports of the one campaign, their paths printed.
			files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
			if len(files) != 1 {
				t.Fatalf("reports %v, want one <id>.json", files)
			}
			id := strings.TrimSuffix(filepath.Base(files[0]), ".json")
			abs, _ := filepath.Abs(dir)
			if !strings.Contains(text, "campaign "+id+"  ") || !strings.Contains(text, "Reports in "+abs+":\n") {
				t.Errorf("output does not name campaign %s and the folder %s:\n%s", id, abs, text)
			}
			for _, ext := range []string{".csv", ".json", ".html"} {
				path := filepath.Join(abs, id+ext)
				if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
					t.Errorf("report %s: %v", path, err)
				}
				if !strings.Contains(text, "  "+path+"\n") {
					t.Errorf("output lacks the path %s", path)
				}
			}

			b, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			var report map[string]json.RawMessage
			if err := json.Unmarshal(b, &report); err != nil {
				t.Fatalf("%s: %v", files[0], err)
			}
			for _, k := range tc.keys {
				if _, ok := report[k]; !ok {
					t.Errorf("%s.json lacks %q:\n%s", id, k, b)
				}
			}
			var sum struct {
				CampaignID string `json:"campaign_id"`
				State      string `json:"state"`
				Paid       struct{ Count int }
			}
			json.Unmarshal(b, &sum)
			if sum.CampaignID != id || sum.State != tc.state || sum.Paid.Count != tc.paid {
				t.Errorf("%s.json: campaign %s, state %s, paid %d; want %s, %s, %d", id, sum.CampaignID, sum.State, sum.Paid.Count, id, tc.state, tc.paid)
			}
			if tc.csv != "" {
				csv, _ := os.ReadFile(filepath.Join(dir, id+".csv"))
				if !strings.Contains(string(csv), tc.csv) {
					t.Errorf("%s.csv lacks %q:\n%s", id, tc.csv, csv)
				}
			}
		})
	}
}

// TestCampaignAgain: within one world, the same rows with the same
// settings are the same campaign, under another file name or at another
// rate: started again, they send nothing and pay nothing twice.
func TestCampaignAgain(t *testing.T) {
	env, err := startEnvironment(io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	defer env.close()
	var out strings.Builder
	cr, err := newCampaigner(t.Context(), env, t.TempDir(), 500, &out)
	if err != nil {
		t.Fatal(err)
	}
	original := filepath.Join(campaignEvents, "recipients.csv")
	copied := filepath.Join(t.TempDir(), "renamed.csv")
	if b, err := os.ReadFile(original); err != nil || os.WriteFile(copied, b, 0o600) != nil {
		t.Fatalf("copy %s: %v", original, err)
	}
	s, err := loadCampaign(campaignOptions{file: original, settings: filepath.Join(campaignEvents, "settings.json")})
	if err != nil {
		t.Fatal(err)
	}
	if err := cr.run(t.Context(), original, s); err != nil {
		t.Fatalf("first run: %v\n%s", err, &out)
	}
	requests, payments := env.sim.Requests(), env.sim.TotalPayments()
	if payments != 60 {
		t.Fatalf("the first run paid %d red packets, want 60", payments)
	}
	for _, tc := range []struct {
		name string
		file string
		rate float64
	}{
		{"the same file", original, 0},
		{"another name", copied, 0},
		{"another rate", original, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out.Reset()
			again := s
			again.Rate = tc.rate
			if err := cr.run(t.Context(), tc.file, again); err != nil {
				t.Fatalf("run: %v\n%s", err, &out)
			}
			text := out.String()
			for _, want := range []string{
				"the same file with the same settings was started before: nothing is paid again (the campaign is DONE)",
				"paid          60        3,010.08 yuan", "DONE in ",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
			if r, p := env.sim.Requests(), env.sim.TotalPayments(); r != requests || p != payments {
				t.Errorf("WeChat saw %d more requests and paid %d more red packets, want none", r-requests, p-payments)
			}
		})
	}
}

// TestCampaignUsage: the campaign mode wants a file and at most a
// settings file, which must exist, before anything starts; the other
// modes take no arguments.
func TestCampaignUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"no file", []string{"campaign"}, errUsage.Error()},
		{"three arguments", []string{"campaign", "a.csv", "s.json", "more"}, errUsage.Error()},
		{"run with an argument", []string{"run", "x"}, errUsage.Error()},
		{"no such file", []string{"campaign", filepath.Join(campaignEvents, "nothing.csv")}, "the campaign file"},
		{"no such settings", []string{"campaign", filepath.Join(campaignEvents, "bad.csv"), "nothing.json"}, "the campaign settings"},
		{"settings not settings", []string{"campaign", filepath.Join(campaignEvents, "bad.csv"), filepath.Join("..", "..", "events", "send", "direct.json")}, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, stderr strings.Builder
			err := run(t.Context(), tc.args, &out, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("run(%q) = %v, want an error with %q", tc.args, err, tc.err)
			}
			if out.Len() > 0 {
				t.Errorf("run(%q) started the world:\n%s", tc.args, &out)
			}
			if errors.Is(err, errUsage) && !strings.Contains(stderr.String(), "campaign [flags] FILE [SETTINGS]") {
				t.Errorf("usage not printed:\n%s", &stderr)
			}
		})
	}
}

// TestProgress: on a terminal the progress is one line redrawn, ended
// before a log line; otherwise it is plain lines, at most one a second.
func TestProgress(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	at := func(c campaign.Campaign) *campaign.Campaign {
		c.ID, c.Rows, c.StartedAt, c.State = "1a2b", 10_000, start, campaign.Running
		return &c
	}
	for _, tc := range []struct {
		name string
		tty  bool
		want string
	}{
		{"terminal", true, "\r[########............] 4,210/10,000 rows  20.0/s  state RUNNING" +
			"\r[########............] 4,230/10,000 rows  20.0/s  state RUNNING" +
			"\r[##########..........] 5,000/10,000 rows  20.0/s  state DONE   \n" +
			"a log line\n"},
		{"plain", false, "campaign 1a2b: 4210/10000 rows sent, 20.0/s\n" +
			"campaign 1a2b: 5000/10000 rows sent, 20.0/s\n" +
			"a log line\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			now := start
			p := &progress{out: &out, tty: tc.tty, now: func() time.Time { return now }}
			now = start.Add(210500 * time.Millisecond)
			p.update(at(campaign.Campaign{Cursor: 4210, Sent: 4210}))
			now = now.Add(time.Second - time.Millisecond) // within a second of the last
			p.update(at(campaign.Campaign{Cursor: 4230, Sent: 4230}))
			now = start.Add(250 * time.Second)
			done := at(campaign.Campaign{Cursor: 5000, Sent: 5000})
			done.State = campaign.Done
			p.update(done)
			io.WriteString(p, "a log line\n")
			p.end()
			if got := out.String(); got != tc.want {
				t.Errorf("printed\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestYuan: amounts in fen print as yuan with thousands separators.
func TestYuan(t *testing.T) {
	for _, tc := range []struct {
		fen  int64
		want string
	}{
		{0, "0.00"}, {5, "0.05"}, {188, "1.88"}, {301008, "3,010.08"},
		{1_000_000_000, "10,000,000.00"}, {-123456, "-1,234.56"},
	} {
		if got := yuan(tc.fen); got != tc.want {
			t.Errorf("yuan(%d) = %q, want %q", tc.fen, got, tc.want)
		}
	}
}
