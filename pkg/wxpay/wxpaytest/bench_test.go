package wxpaytest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkSendRedpack measures a full call over kept-alive mutual TLS:
// the client builds and signs, the simulator parses, verifies and pays.
func BenchmarkSendRedpack(b *testing.B) {
	s := start(b, WithLimits(Limits{UserDailyCount: -1, UserDailyAmount: -1, MerchantDailyAmount: -1, Balance: 1 << 60}))
	c, _ := client(b, s)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			billno := "BENCH" + strconv.FormatInt(n.Add(1), 10)
			if _, err := c.SendRedpack(ctx, sendReq(billno, "openid", 100)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
