package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// countingLedger records nothing and counts the planned items: the
// ledger is a remote table, not the runner's memory.
type countingLedger struct {
	ledger.Store
	created atomic.Int64
}

func (l *countingLedger) Create(ctx context.Context, it *ledger.Item) error {
	l.created.Add(1)
	return nil
}

// peakHeap samples the heap in use until stop is called, and returns the
// highest figure seen.
func peakHeap() (stop func() uint64) {
	var (
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak }
}

// BenchmarkPlan100k checks then plans a file of 100,000 rows, as a
// runner does: two streaming passes over the file, every row validated,
// hashed and turned into its ledger item. It reports the time per file
// and the peak heap in use, against a 256 MB Lambda.
//
//	go test -run '^$' -bench Plan100k -benchtime 3x ./internal/campaign/
func BenchmarkPlan100k(b *testing.B) {
	const rows = 100_000
	path := filepath.Join(b.TempDir(), "big.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintln(f, "re_openid,total_amount,wishing")
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(f, "oUser%024d,%d,Happy new year %d\n", i, 100+i%19900, i)
	}
	f.Close()
	s := Settings{WxAppID: "wx8888888888888888", SendName: "Shop", ActName: "Spring", Wishing: "Thanks", Remark: "r", ClientIP: "10.0.0.1"}
	ctx := context.Background()
	runtime.GC()
	debug.FreeOSMemory()
	var peak uint64
	for b.Loop() {
		stop := peakHeap()
		src := LocalFile{Path: path}
		rc, etag, err := src.Open(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		checked, err := Check(rc, s, "1900000109")
		rc.Close()
		if err != nil || len(checked.Errors) > 0 || checked.Rows != rows {
			b.Fatalf("Check: %v %+v", err, checked.Errors)
		}
		c := &Campaign{ID: checked.ID, MchID: "1900000109", Settings: s, ETag: etag, Identity: checked.Identity, Rows: rows}
		l := &countingLedger{}
		if _, err := plan(ctx, c, src, l, time.Now, func(int) error { return nil }); err != nil && !errors.Is(err, ErrRefused) {
			b.Fatal(err)
		}
		if n := l.created.Load(); n != rows {
			b.Fatalf("planned %d rows, want %d", n, rows)
		}
		peak = max(peak, stop())
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(rows)/(b.Elapsed().Seconds()/float64(b.N)), "rows/s")
}
