package wxpay_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
	"github.com/redpacket-lambda/wxredpack/pkg/wxpay/wxpaytest"
)

// roundTripSetup is a simulator, a client for it, one mini-program request
// and a bare keep-alive mutual TLS http.Client holding the same request's
// prepared bytes: the floor a client cannot beat.
type roundTripSetup struct {
	sim    *wxpaytest.Server
	client *wxpay.Client
	req    *wxpay.SendMiniRequest
	floor  *http.Client
	body   []byte
	url    string
}

func newRoundTrip(b *testing.B) *roundTripSetup {
	b.Helper()
	sim := wxpaytest.NewServer()
	b.Cleanup(sim.Close)
	client, err := sim.NewClient()
	if err != nil {
		b.Fatal(err)
	}
	req := &wxpay.SendMiniRequest{
		MchBillno: "RT20261123000001", WxAppID: "wx8888888888888888", SendName: "天虹百货",
		ReOpenID: "oxTWIuGaIt6gTKsQRLau2M0yL16E", TotalAmount: 100, TotalNum: 1,
		Wishing: "恭喜发财", ActName: "新年红包", Remark: "快来抢",
	}
	body, err := client.BuildSendMini(req)
	if err != nil {
		b.Fatal(err)
	}
	floor := &http.Client{Transport: wxpay.NewTransport(sim.Merchant().TLSCertificate(), sim.RootCAs(), 0)}
	s := &roundTripSetup{sim: sim, client: client, req: req, floor: floor, body: body, url: sim.URL + wxpay.PathSendMiniProgramHB}
	// Warm both connections; the repeat of one billno is answered from
	// the simulator's ledger, the same work for both sides.
	s.clientCall(b)
	s.floorCall(b)
	return s
}

func (s *roundTripSetup) clientCall(b *testing.B) {
	if _, err := s.client.SendMiniProgramHB(context.Background(), s.req); err != nil {
		b.Fatal(err)
	}
}

func (s *roundTripSetup) floorCall(b *testing.B) {
	resp, err := s.floor.Post(s.url, "text/xml; charset=utf-8", bytes.NewReader(s.body))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("floor status %d", resp.StatusCode)
	}
}

// BenchmarkRoundTrip is one sendminiprogramhb call through the client over
// a kept-alive mutual TLS connection to the simulator: build, sign, send,
// read, decode, classify, sign the jsapi parameters.
func BenchmarkRoundTrip(b *testing.B) {
	s := newRoundTrip(b)
	b.ReportAllocs()
	for b.Loop() {
		s.clientCall(b)
	}
}

// BenchmarkRoundTripFloor is a bare http.Client POST of the same prepared
// bytes on the same kind of connection.
func BenchmarkRoundTripFloor(b *testing.B) {
	s := newRoundTrip(b)
	b.ReportAllocs()
	for b.Loop() {
		s.floorCall(b)
	}
}

// BenchmarkRoundTripVsFloor measures both in one run, interleaved in short
// rounds so that the machine's noise falls on both alike, and reports the
// client's time as a multiple of the floor's (target: at most 1.10).
func BenchmarkRoundTripVsFloor(b *testing.B) {
	s := newRoundTrip(b)
	const round = 20
	var client, floor time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		for range round {
			s.clientCall(b)
		}
		client += time.Since(start)
		start = time.Now()
		for range round {
			s.floorCall(b)
		}
		floor += time.Since(start)
		n += round
	}
	b.ReportMetric(float64(client.Nanoseconds())/float64(n), "client-ns/call")
	b.ReportMetric(float64(floor.Nanoseconds())/float64(n), "floor-ns/call")
	b.ReportMetric(float64(client)/float64(floor), "x-floor")
	if h := s.sim.Handshakes(); h != 2 {
		b.Errorf("%d TLS handshakes, want 2 (one per kept-alive connection)", h)
	}
}
