package wxpaytest

import (
	"io"
	"net/netip"
	"sync"
	"time"
)

// DefaultMchID is the merchant number a server simulates unless told
// otherwise (the one in WeChat Pay's documentation).
const DefaultMchID = "1900000109"

// Config configures a server started with Start. The zero value is usable.
type Config struct {
	// MchID is the simulated merchant (default DefaultMchID).
	MchID string
	// APIKey is the merchant's APIv2 key (default: 32 random alphanumeric
	// characters from Rand).
	APIKey string
	// MerchantName is the OU of the merchant certificate (default
	// "wxpaytest merchant").
	MerchantName string
	// Addr is where the primary endpoint (api.mch.weixin.qq.com) listens
	// (default "127.0.0.1:0", a free loopback port).
	Addr string
	// BackupAddr is where the backup endpoint (api2.mch.weixin.qq.com)
	// listens; empty means no backup. The backup serves the same ledger.
	BackupAddr string
	// Hosts are extra DNS names or IP addresses for the server certificate,
	// which always covers 127.0.0.1, ::1, localhost, api.mch.weixin.qq.com
	// and api2.mch.weixin.qq.com (for example "host.docker.internal" when
	// clients run in containers).
	Hosts []string
	// Now is the clock for send times, daily limits (days in China
	// Standard Time) and the per-second request limit; time.Now when nil.
	Now func() time.Time
	// Rand is the source of send_listid, the mini-program package and a
	// default APIKey; crypto/rand when nil. A deterministic reader makes
	// answers repeatable. It is only read under the server's lock.
	Rand io.Reader
	// Limits are the merchant's and WeChat's limits (zero fields take
	// their defaults, see Limits).
	Limits Limits
	// Logf, when set, receives one line per request. Nil (the default)
	// keeps the handler silent.
	Logf func(format string, args ...any)
	// CallerIPs is the merchant's caller-IP allowlist (调用IP地址 in the
	// merchant platform, at most MaxCallerIPs addresses): a request from
	// another remote address answers NO_AUTH with NoAuthCallerIP and
	// moves no money. Empty (the default) lets every address call.
	CallerIPs []netip.Addr
	// Timeline is how red packets move after their send on the clock Now:
	// SENDING to SENT, the claim window, the refund, a billno's expiry
	// (zero fields take their defaults, see Timeline).
	Timeline Timeline

	// ServerCA signs the server certificate; a new CA when nil.
	ServerCA *CA
	// MerchantCA issues merchant certificates; a new CA when nil.
	MerchantCA *CA
	// Merchant are the merchant's credentials, which must come from
	// MerchantCA; issued when nil (then MchID, APIKey and MerchantName
	// apply). With Merchant set, its MchID and APIKey win.
	Merchant *MerchantFiles
}

// The default limits (fen and counts), as WeChat Pay documents them for a
// merchant that has not asked for more.
const (
	DefaultBalance             = 1_000_000_000 // 10,000,000 yuan
	DefaultMinAmount           = 100           // 1 yuan
	DefaultMaxAmount           = 20_000        // 200 yuan
	DefaultSceneMinAmount      = 30            // 0.30 yuan
	DefaultSceneMaxAmount      = 499_900       // 4,999 yuan
	DefaultUserDailyCount      = 10
	DefaultUserDailyAmount     = 100_000     // 1,000 yuan
	DefaultMerchantDailyAmount = 100_000_000 // 1,000,000 yuan
)

// Limits are what WeChat Pay enforces on red packets. Zero fields take the
// defaults; a negative count or amount limit means no limit.
type Limits struct {
	// Balance is the merchant's starting balance in fen (default
	// DefaultBalance). Use Server.SetBalance for an empty account.
	Balance int64
	// MinAmount and MaxAmount bound one red packet (for a group red
	// packet, the average share) sent without scene_id: 100 to 20000 fen
	// by default. An amount outside 100 to 20000 without scene_id is a
	// PARAM_ERROR naming scene_id, as WeChat requires it; one inside that
	// range but outside MinAmount..MaxAmount is MONEY_LIMIT.
	MinAmount, MaxAmount int64
	// SceneMinAmount and SceneMaxAmount bound one red packet sent with a
	// scene_id (default 30 to 499900 fen, what WeChat allows a merchant
	// to configure per scene); outside them is MONEY_LIMIT.
	SceneMinAmount, SceneMaxAmount int64
	// UserDailyCount is how many red packets one re_openid may receive
	// per day (default 10; SENDNUM_LIMIT beyond).
	UserDailyCount int
	// UserDailyAmount is how many fen one re_openid may receive per day
	// (default 100000; RCVDAMOUNT_LIMIT beyond). A group red packet counts
	// its average share for the seed user.
	UserDailyAmount int64
	// MerchantDailyAmount is how many fen the merchant may send per day
	// (default 100000000; SENDAMOUNT_LIMIT beyond).
	MerchantDailyAmount int64
	// RequestsPerSecond bounds the requests answered per second of the
	// clock, over all endpoints; 0 means no limit. Requests beyond it
	// answer FREQ_LIMIT.
	RequestsPerSecond int
}

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.Balance, DefaultBalance)
	def(&l.MinAmount, DefaultMinAmount)
	def(&l.MaxAmount, DefaultMaxAmount)
	def(&l.SceneMinAmount, DefaultSceneMinAmount)
	def(&l.SceneMaxAmount, DefaultSceneMaxAmount)
	def(&l.UserDailyAmount, DefaultUserDailyAmount)
	def(&l.MerchantDailyAmount, DefaultMerchantDailyAmount)
	if l.UserDailyCount == 0 {
		l.UserDailyCount = DefaultUserDailyCount
	}
	return l
}

// Option changes the Config of NewServer.
type Option func(*Config)

// WithMchID sets Config.MchID.
func WithMchID(mchID string) Option { return func(c *Config) { c.MchID = mchID } }

// WithAPIKey sets Config.APIKey.
func WithAPIKey(key string) Option { return func(c *Config) { c.APIKey = key } }

// WithAddr sets Config.Addr.
func WithAddr(addr string) Option { return func(c *Config) { c.Addr = addr } }

// WithBackup starts a backup endpoint on a free loopback port.
func WithBackup() Option { return func(c *Config) { c.BackupAddr = "127.0.0.1:0" } }

// WithBackupAddr sets Config.BackupAddr.
func WithBackupAddr(addr string) Option { return func(c *Config) { c.BackupAddr = addr } }

// WithHosts adds names to the server certificate (Config.Hosts).
func WithHosts(hosts ...string) Option {
	return func(c *Config) { c.Hosts = append(c.Hosts, hosts...) }
}

// WithClock sets Config.Now.
func WithClock(now func() time.Time) Option { return func(c *Config) { c.Now = now } }

// WithRand sets Config.Rand.
func WithRand(r io.Reader) Option { return func(c *Config) { c.Rand = r } }

// WithLimits sets Config.Limits.
func WithLimits(l Limits) Option { return func(c *Config) { c.Limits = l } }

// WithLogf sets Config.Logf (t.Logf in a test).
func WithLogf(logf func(format string, args ...any)) Option {
	return func(c *Config) { c.Logf = logf }
}

// WithTimeline sets Config.Timeline.
func WithTimeline(tl Timeline) Option { return func(c *Config) { c.Timeline = tl } }

// WithConfig lets a test change any Config field.
func WithConfig(f func(*Config)) Option { return f }

// Clock is a clock for Config.Now, safe for concurrent use. NewClock's
// stands still until Advance or Set moves it: a test's injected time.
// NewAcceleratedClock's runs on its own, speed times as fast as the wall
// clock, so that a local run sees WeChat's day (the 24-hour claim window,
// refunds, a billno's expiry) pass in seconds; Advance and Set move it too.
type Clock struct {
	mu    sync.Mutex
	base  time.Time // the clock's time at the wall reading wall
	wall  time.Time // wall clock (with its monotonic reading) at base
	speed float64   // 0: stopped
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{base: t} }

// NewAcceleratedClock returns a clock that starts at t and runs speed times
// as fast as the wall clock: 1 is real time, 60 makes a minute pass each
// second, 3600 an hour. A speed of 0 or less makes a stopped clock, as
// NewClock does.
func NewAcceleratedClock(t time.Time, speed float64) *Clock {
	if speed <= 0 {
		return NewClock(t)
	}
	return &Clock{base: t, wall: time.Now(), speed: speed}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *Clock) nowLocked() time.Time {
	if c.speed == 0 {
		return c.base
	}
	return c.base.Add(time.Duration(float64(time.Since(c.wall)) * c.speed))
}

// Advance moves the clock forward by d (back, for a negative d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rebase(c.nowLocked().Add(d))
}

// Set sets the clock to t; a running clock runs on from t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rebase(t)
}

func (c *Clock) rebase(t time.Time) {
	c.base = t
	if c.speed != 0 {
		c.wall = time.Now()
	}
}

// SetSpeed makes the clock run speed times as fast as the wall clock from
// the time it shows now (0 or less stops it there): a local run can let
// the simulator's day pass in seconds once its samples are done.
func (c *Clock) SetSpeed(speed float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.nowLocked()
	c.speed = max(speed, 0)
	c.rebase(now)
}

// Speed returns how many times as fast as the wall clock the clock runs:
// 0 for a stopped clock.
func (c *Clock) Speed() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.speed
}

// chinaTime is China Standard Time (no daylight saving since 1991), the
// zone of WeChat's send_time and of its daily limits; a fixed zone, so no
// tz database is needed.
var chinaTime = time.FixedZone("CST", 8*60*60)

// TimeLayout is the layout of send_time and rcv_time.
const TimeLayout = "2006-01-02 15:04:05"
