// Command local runs the four functions on this machine against the WeChat
// Pay simulator, with no AWS account and no Docker.
//
//	go run ./cmd/local [run]                     invoke every function on its events/ samples
//	go run ./cmd/local serve                     serve the API routes on http://127.0.0.1:3000
//	go run ./cmd/local campaign FILE [SETTINGS]  send a campaign file's red packets
//
// Every mode starts the simulator (pkg/wxpay/wxpaytest), an in-process
// Secrets Manager endpoint (internal/smtest) holding the merchant secret and
// an in-memory ledger (ledger.NewMemory, one store shared by the four
// functions), then build each function as its bootstrap does
// (handler.FromEnv): settings from the environment, credentials through the
// AWS SDK's GetSecretValue, the simulator trusted through SSL_CERT_FILE;
// only the ledger is the memory one instead of the DynamoDB table
// WXPAY_LEDGER_TABLE names. After the samples, run repeats one send to show
// the ledger answering a repeat and refusing a conflicting one, then the
// reconciler settling an unknown send in one pass while the simulator's
// clock runs an hour a second.
//
// The campaign mode runs a campaign file (CSV or JSONL, see
// events/campaign/) with its settings (events/campaign/settings.json when
// SETTINGS is omitted) through the engine the deployed runner uses
// (campaign.Engine), over the memory ledger and memory campaign state,
// while the simulator enforces WeChat's rate limit (-rps) and the
// merchant's balance (-balance). It prints the progress, then a summary,
// and writes the reports <id>.csv, <id>.json and <id>.html to -out. A
// refused file, or a campaign paused by WeChat (NOTENOUGH: try -balance
// 0), fails the command, with the reports written all the same.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/credstore"
	"github.com/redpacket-lambda/wxredpack/internal/handler"
	"github.com/redpacket-lambda/wxredpack/internal/ledger"
	"github.com/redpacket-lambda/wxredpack/internal/smtest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "local:", err)
		}
		os.Exit(1)
	}
}

// errUsage is run's error for arguments it cannot take; the usage is
// printed.
var errUsage = errors.New("wrong arguments: see the usage")

// functions are the four functions in the order run invokes them: the
// mini-program red packet first, the query last (it reads what the others
// sent).
var functions = []handler.Operation{handler.SendMini, handler.SendGroup, handler.Send, handler.Query}

// run parses the mode and flags and runs it until done or ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	mode := "run"
	if len(args) > 0 && (args[0] == "run" || args[0] == "serve" || args[0] == "campaign") {
		mode, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("local "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	eventsDir := fs.String("events", "events", "the sample events folder (run; campaign: its campaign/settings.json is the default SETTINGS)")
	only := fs.String("function", "", "invoke only this function: sendmini, sendgroup, send or query (run)")
	addr := fs.String("addr", "127.0.0.1:3000", "where to serve the API (serve)")
	out := fs.String("out", filepath.Join(".local", "campaigns"), "the folder the reports are written to (campaign)")
	rps := fs.Int("rps", campaign.DefaultRateLimit, "WeChat's limit of requests per second for the merchant, enforced by the simulator with FREQ_LIMIT; 0 for none (campaign)")
	balance := fs.Int64("balance", wxpaytest.DefaultBalance, "the merchant's balance at the simulator, in fen; 0 shows NOTENOUGH pausing the campaign (campaign)")
	rate := fs.Float64("rate", 0, "the campaign's sends per second, instead of the settings' rate; at most -rate-limit less 10 (campaign)")
	rateLimit := fs.Int("rate-limit", 0, "WeChat's limit of sends per second as the engine knows it; 0 takes -rps (campaign)")
	verbose := fs.Bool("v", false, "show the functions' INFO log lines")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./cmd/local [run|serve] [flags]\n")
		fmt.Fprintf(stderr, "       go run ./cmd/local campaign [flags] FILE [SETTINGS]\n\n")
		fs.PrintDefaults()
	}
	// Flags may follow the arguments too: campaign FILE -rps 100.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	var (
		opts     campaignOptions
		settings campaign.Settings
	)
	switch {
	case mode != "campaign" && len(positional) > 0:
		fmt.Fprintf(stderr, "local %s takes no arguments, got %q\n", mode, positional)
		fs.Usage()
		return errUsage
	case mode == "campaign" && (len(positional) == 0 || len(positional) > 2):
		fmt.Fprintln(stderr, campaignUsage)
		fs.Usage()
		return errUsage
	case mode == "campaign":
		opts = campaignOptions{file: positional[0], settings: filepath.Join(*eventsDir, "campaign", "settings.json"),
			out: *out, rps: *rps, balance: *balance, rate: *rate, rateLimit: *rateLimit}
		if len(positional) == 2 {
			opts.settings = positional[1]
		}
		var err error
		if settings, err = loadCampaign(opts); err != nil {
			return err
		}
	}
	env, err := startEnvironment(stdout, *verbose)
	if err != nil {
		return err
	}
	defer env.close()
	if mode == "campaign" {
		return runCampaignMode(ctx, opts, settings, env, stdout)
	}
	handlers, err := newHandlers(ctx, env.ledger)
	if err != nil {
		return err
	}
	if mode == "serve" {
		return serve(ctx, *addr, handlers, env, stdout)
	}
	return invokeSamples(ctx, *eventsDir, *only, handlers, env, stdout)
}

// newHandlers builds the four functions' handlers as handler.FromEnv does
// (settings from the environment, credentials from the Secrets Manager
// secret, JSON logs on stdout), all recording in store.
func newHandlers(ctx context.Context, store ledger.Store) (map[string]*handler.Handler, error) {
	handlers := make(map[string]*handler.Handler, len(functions))
	for _, op := range functions {
		logger := handler.NewLogger(os.Stdout, os.Getenv("AWS_LAMBDA_LOG_LEVEL"))
		settings, err := handler.SettingsFromEnv(os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op.Name(), err)
		}
		settings.Ledger = store
		creds, err := credstore.FromEnv(ctx, settings.NewClient, logger)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op.Name(), err)
		}
		handlers[op.Name()] = handler.New(op, creds, settings, logger)
	}
	return handlers, nil
}

// environment is the simulated world the functions run in.
type environment struct {
	sim *wxpaytest.Server
	sm  *smtest.Server
	// ledger is the functions' ledger, in memory: one store for the
	// four functions of a run, as one table serves them when deployed.
	ledger ledger.Store
	// clock is the simulator's clock: real time, until the reconciler's
	// section of run makes it run faster.
	clock *wxpaytest.Clock
	dir   string
}

const localSecretID = "wxpay/local"

// serverCA is the simulator's CA, one per process: Go reads SSL_CERT_FILE
// once, so every environment this process starts must be trusted by it.
var serverCA = sync.OnceValues(func() (*wxpaytest.CA, error) {
	return wxpaytest.NewCA("wxredpack local simulator CA")
})

// startEnvironment starts the simulator and Secrets Manager endpoint and
// points this process's environment at them, as env/local.json does for
// sam local invoke.
func startEnvironment(stdout io.Writer, verbose bool) (*environment, error) {
	ca, err := serverCA()
	if err != nil {
		return nil, fmt.Errorf("make the simulator's CA: %w", err)
	}
	clock := wxpaytest.NewAcceleratedClock(time.Now(), 1)
	sim, err := wxpaytest.Start(wxpaytest.Config{ServerCA: ca, Now: clock.Now})
	if err != nil {
		return nil, fmt.Errorf("start the WeChat Pay simulator: %w", err)
	}
	sm, err := smtest.Start("127.0.0.1:0")
	if err != nil {
		sim.Close()
		return nil, fmt.Errorf("start the Secrets Manager endpoint: %w", err)
	}
	env := &environment{sim: sim, sm: sm, ledger: ledger.NewMemory(), clock: clock}
	sm.Put(localSecretID, string(sim.Merchant().SecretJSON()))
	env.dir, err = os.MkdirTemp("", "wxredpack-local-")
	if err != nil {
		env.close()
		return nil, err
	}
	caFile := filepath.Join(env.dir, "ca.pem")
	if err := os.WriteFile(caFile, sim.CAPEM(), 0o600); err != nil {
		env.close()
		return nil, err
	}
	level := "WARN"
	if verbose {
		level = "INFO"
	}
	vars := map[string]string{
		"WXPAY_SECRET_ID":                  localSecretID,
		"WXPAY_BASE_URL":                   sim.URL,
		"WXPAY_BACKUP_BASE_URL":            "",
		"WXPAY_APPID":                      "wx8888888888888888",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": sm.URL(),
		"AWS_REGION":                       "us-east-1",
		"AWS_ACCESS_KEY_ID":                "local",
		"AWS_SECRET_ACCESS_KEY":            "local",
		"AWS_SESSION_TOKEN":                "",
		"AWS_PROFILE":                      "",
		"AWS_CONFIG_FILE":                  filepath.Join(env.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE":      filepath.Join(env.dir, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED":        "true",
		"SSL_CERT_FILE":                    caFile,
		"AWS_LAMBDA_LOG_LEVEL":             level,
	}
	for k, v := range vars {
		if err := os.Setenv(k, v); err != nil {
			env.close()
			return nil, err
		}
	}
	fmt.Fprintf(stdout, "WeChat Pay simulator  %s  (mch_id %s)\n", sim.URL, sim.Merchant().MchID)
	fmt.Fprintf(stdout, "Secrets Manager       %s  (secret %s)\n", sm.URL(), localSecretID)
	fmt.Fprintf(stdout, "Ledger                in memory, shared by the four functions\n\n")
	return env, nil
}

func (e *environment) close() {
	e.sim.Close()
	e.sm.Close()
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}
