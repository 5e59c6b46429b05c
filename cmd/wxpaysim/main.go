// Command wxpaysim runs the WeChat Pay red packet simulator
// (pkg/wxpay/wxpaytest) as a standalone HTTPS server for local runs of the
// functions: sendgroupredpack, sendminiprogramhb, sendredpack and
// gethbinfo over mutual TLS, with a ledger and WeChat's limits.
//
// It writes the credentials to -dir (ca.pem for SSL_CERT_FILE, the merchant
// certificate and key as PEM and PKCS#12, secret.json in the project's
// secret shape) and prints the environment a client needs. A restart with
// the same -dir keeps the CA and the merchant credentials, so clients and a
// stored secret keep working; -fresh makes new ones. With -secrets-addr it
// also serves a fake Secrets Manager holding the secret as -secret-id.
//
// Usage:
//
//	go run ./cmd/wxpaysim [-addr 127.0.0.1:8443] [-backup-addr 127.0.0.1:8444]
//	    [-dir .local] [-mch-id 1900000109] [-balance fen] [-rps n]
//	    [-caller-ips 203.0.113.10,203.0.113.11] [-speed 3600] [-claim-after 30m]
//	    [-hosts host.docker.internal] [-secrets-addr 127.0.0.1:4566]
//	    [-secret-id wxpay/local] [-fresh] [-v]
//
// -caller-ips sets the merchant's caller-IP allowlist (调用IP地址): requests
// from any other address answer NO_AUTH, as WeChat does. Without it every
// address may call.
//
// -speed runs the simulator's clock that many times as fast as the wall
// clock, from now (wxpaytest.NewAcceleratedClock): with -speed 3600 an hour
// passes each second, so WeChat's timeline plays out within a minute or
// two: a red packet answered PROCESSING shows SENDING for 10 minutes
// (a sixth of a second), an unclaimed red packet becomes RFUND_ING 24 hours
// after it was sent (24 s) and REFUND an hour later, its money back in the
// balance, and a billno first tried more than 24 hours ago that WeChat has
// no record of answers SEND_FAILED. send_time, rcv_time, refund_time and
// the daily limits follow that clock. The default, 1, is real time.
// -claim-after has every red packet claimed by its receiver that long (on
// the simulator's clock) after it became SENT; by default none is, and
// each is refunded after the 24-hour claim window.
//
// It runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/smtest"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "wxpaysim:", err)
		os.Exit(1)
	}
}

// errUsage is a bad command line, already reported by the flag package.
var errUsage = errors.New("usage")

// run starts the simulator as args say, prints what to set to stdout and
// serves until ctx ends.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("wxpaysim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8443", "`address` of the primary endpoint (api.mch.weixin.qq.com); port 0 picks one")
	backupAddr := fs.String("backup-addr", "", "`address` of the backup endpoint (api2.mch.weixin.qq.com); empty for none")
	dir := fs.String("dir", ".local", "`directory` for ca.pem, the merchant credentials and secret.json")
	mchID := fs.String("mch-id", wxpaytest.DefaultMchID, "the simulated merchant's mch_id")
	balance := fs.Int64("balance", wxpaytest.DefaultBalance, "the merchant's balance in `fen`")
	rps := fs.Int("rps", 0, "requests per second before FREQ_LIMIT (0: no limit)")
	speed := fs.Float64("speed", 1, "the simulator's clock runs this many `times` as fast as the wall clock (3600: an hour a second; 1: real time)")
	claimAfter := fs.Duration("claim-after", 0, "every red packet is claimed by its receiver this long after it became SENT, on the simulator's clock (0: never; refunded after 24 h)")
	callerIPs := fs.String("caller-ips", "", "the merchant's caller-IP allowlist (调用IP地址): comma-separated `addresses`; others answer NO_AUTH (empty: any address)")
	hosts := fs.String("hosts", "", "extra comma-separated `names` for the server certificate (e.g. host.docker.internal)")
	secretsAddr := fs.String("secrets-addr", "", "`address` of a fake Secrets Manager endpoint serving the secret; empty for none")
	secretID := fs.String("secret-id", "wxpay/local", "`name` of the secret the fake Secrets Manager holds")
	fresh := fs.Bool("fresh", false, "make a new CA and new merchant credentials even if -dir has some")
	verbose := fs.Bool("v", false, "log every request to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "wxpaysim: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	if *balance < 0 || *rps < 0 {
		fmt.Fprintln(fs.Output(), "wxpaysim: -balance and -rps must not be negative")
		return errUsage
	}
	if !(*speed >= 1 && *speed <= maxSpeed) || *claimAfter < 0 {
		fmt.Fprintf(fs.Output(), "wxpaysim: -speed must be 1 to %d and -claim-after not negative\n", maxSpeed)
		return errUsage
	}
	allowlist, err := parseCallerIPs(*callerIPs)
	if err != nil {
		fmt.Fprintf(fs.Output(), "wxpaysim: -caller-ips: %v\n", err)
		return errUsage
	}

	cfg := wxpaytest.Config{
		MchID:      *mchID,
		Addr:       *addr,
		BackupAddr: *backupAddr,
		Limits:     wxpaytest.Limits{RequestsPerSecond: *rps},
		CallerIPs:  allowlist,
		Timeline:   wxpaytest.Timeline{Claim: *claimAfter},
	}
	var clock *wxpaytest.Clock
	if *speed != 1 {
		clock = wxpaytest.NewAcceleratedClock(time.Now(), *speed)
		cfg.Now = clock.Now
	}
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Hosts = append(cfg.Hosts, h)
		}
	}
	if *verbose {
		logger := log.New(os.Stderr, "", log.LstdFlags)
		cfg.Logf = logger.Printf
	}
	state := "new"
	if !*fresh {
		if saved, ok := reusable(*dir, *mchID); ok {
			cfg.ServerCA, cfg.MerchantCA, cfg.Merchant = saved.ServerCA, saved.MerchantCA, saved.Merchant
			state = "reused"
		}
	}

	s, err := wxpaytest.Start(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetBalance(*balance)
	files, err := s.WriteFiles(*dir)
	if err != nil {
		return err
	}

	var sm *smtest.Server
	if *secretsAddr != "" {
		if sm, err = smtest.Start(*secretsAddr); err != nil {
			return err
		}
		defer sm.Close()
		sm.Put(*secretID, string(s.Merchant().SecretJSON()))
	}

	m := s.Merchant()
	out := &strings.Builder{}
	fmt.Fprintf(out, "wxpaysim: WeChat Pay red packet simulator, mch_id %s, balance %d fen\n", m.MchID, s.Balance())
	fmt.Fprintf(out, "  primary   %s\n", s.URL)
	if s.BackupURL != "" {
		fmt.Fprintf(out, "  backup    %s\n", s.BackupURL)
	}
	fmt.Fprintf(out, "  files     %s (%s credentials, certificate expires %s)\n", files.Dir, state, m.Certificate.NotAfter.Format(time.DateOnly))
	if sm != nil {
		fmt.Fprintf(out, "  secrets   %s (secret %s)\n", sm.URL(), *secretID)
	}
	if len(allowlist) > 0 {
		fmt.Fprintf(out, "  callers   %s (调用IP地址: any other address answers NO_AUTH)\n", joinAddrs(allowlist))
	}
	if clock != nil {
		fmt.Fprintf(out, "  clock     %s times real time: 24 h pass in %s (now %s in China)\n",
			strconv.FormatFloat(*speed, 'f', -1, 64), wallTime(24*time.Hour, *speed), clock.Now().In(chinaTime).Format(time.DateTime))
	}
	if *claimAfter > 0 {
		fmt.Fprintf(out, "  claims    every red packet, %s after it became SENT\n", *claimAfter)
	}
	fmt.Fprintf(out, "\nSet:\n")
	for _, line := range files.EnvLines {
		fmt.Fprintf(out, "export %s\n", line)
	}
	if sm != nil {
		fmt.Fprintf(out, "export AWS_ENDPOINT_URL_SECRETS_MANAGER=%s\n", sm.URL())
		fmt.Fprintf(out, "export WXPAY_SECRET_ID=%s\n", *secretID)
	}
	fmt.Fprintf(out, "\nSecret (PEM pair): %s\n", files.Secret)
	fmt.Fprintf(out, "Secret (PKCS#12):  %s\n", files.SecretP12)
	fmt.Fprintf(out, "aws secretsmanager create-secret --name %s --secret-string file://%s\n", *secretID, files.Secret)
	fmt.Fprintf(out, "\nServing until interrupted.\n")
	if _, err := io.WriteString(stdout, out.String()); err != nil {
		return err
	}

	<-ctx.Done()
	fmt.Fprintf(stdout, "wxpaysim: stopping after %d requests, %d red packets paid\n", s.Requests(), s.TotalPayments())
	return nil
}

// maxSpeed bounds -speed: at 100000 times real time the merchant
// certificate's five years pass in under half an hour.
const maxSpeed = 100000

// chinaTime is China Standard Time, the zone of WeChat's times.
var chinaTime = time.FixedZone("CST", 8*60*60)

// wallTime is how long d on a clock running speed times as fast takes on
// the wall clock, rounded for display.
func wallTime(d time.Duration, speed float64) time.Duration {
	w := time.Duration(float64(d) / speed)
	if w >= time.Second {
		return w.Round(100 * time.Millisecond)
	}
	return w.Round(time.Millisecond)
}

// reusable loads the credentials a previous run left in dir, if they are
// complete, for mchID and not about to expire.
func reusable(dir, mchID string) (*wxpaytest.Config, bool) {
	saved, err := wxpaytest.LoadDir(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "wxpaysim: not reusing %s: %v\n", dir, err)
		}
		return nil, false
	}
	if saved.Merchant.MchID != mchID {
		fmt.Fprintf(os.Stderr, "wxpaysim: %s holds mch_id %s, making new credentials for %s\n", dir, saved.Merchant.MchID, mchID)
		return nil, false
	}
	if time.Until(saved.Merchant.Certificate.NotAfter) < 24*time.Hour {
		return nil, false
	}
	return saved, true
}

// parseCallerIPs reads -caller-ips: comma-separated addresses, at most as
// many as the merchant platform takes.
func parseCallerIPs(list string) ([]netip.Addr, error) {
	var ips []netip.Addr
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		ip, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		ips = append(ips, ip.Unmap())
	}
	if len(ips) > wxpaytest.MaxCallerIPs {
		return nil, fmt.Errorf("%d addresses, the merchant platform takes at most %d", len(ips), wxpaytest.MaxCallerIPs)
	}
	return ips, nil
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}
