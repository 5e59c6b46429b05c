package wxpaytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// Record is the simulator's ledger entry for one mch_billno: a red packet
// WeChat accepted, whose money left the balance once.
type Record struct {
	// API is the call that sent it: "sendredpack", "sendgroupredpack" or
	// "sendminiprogramhb".
	API string
	// HBType is gethbinfo's hb_type: GROUP for sendgroupredpack, NORMAL
	// otherwise.
	HBType string

	// The request's fields as WeChat received them (amounts in fen).
	MchBillno   string // mch_billno
	MchID       string // mch_id
	WxAppID     string // wxappid
	ReOpenID    string // re_openid
	SendName    string // send_name
	TotalAmount int64  // total_amount
	TotalNum    int64  // total_num
	Wishing     string // wishing
	ActName     string // act_name
	Remark      string // remark
	SceneID     string // scene_id
	ClientIP    string // client_ip (sendredpack)

	// SendListID is WeChat's red packet number (send_listid, gethbinfo's
	// detail_id).
	SendListID string
	// Package is sendminiprogramhb's raw package, empty for the others.
	Package string
	// Status is gethbinfo's status: SENT after the send (SENDING after
	// FaultProcessingAfterPay), then as the Timeline, the red packet's
	// Fate, SetStatus and Receive make it.
	Status string
	// Reason is gethbinfo's reason (for FAILED, or a SENDING red packet
	// that is failing).
	Reason string
	// SendTime is when the red packet was sent, on the server's clock.
	SendTime time.Time
	// RefundTime and RefundAmount are set when the status becomes REFUND.
	RefundTime   time.Time
	RefundAmount int64 // fen returned to the balance
	// Receivers are gethbinfo's hbinfo entries, in order.
	Receivers []Receiver

	seq int // ledger order

	// The Timeline's marks: since when it is SENDING, when it became
	// SENT, when it became RFUND_ING.
	sendingSince, sentAt, refundingAt time.Time
}

// Receiver is one hbinfo entry: who opened how much of the red packet,
// and when.
type Receiver struct {
	OpenID  string    // openid
	Amount  int64     // amount, in fen
	RcvTime time.Time // rcv_time
}

func (r *Record) clone() Record {
	c := *r
	c.Receivers = slices.Clone(r.Receivers)
	return c
}

// sendRequest is a validated send request.
type sendRequest struct {
	api, hbType                                 string
	billno, mchID, wxappid, openid, sendName    string
	wishing, actName, remark, sceneID, clientIP string
	amount, num                                 int64
	mini                                        bool
}

func newSendRequest(ep *endpoint, p wxpay.Params) sendRequest {
	amount, _ := positive(p["total_amount"])
	num, _ := positive(p["total_num"])
	q := sendRequest{
		api: ep.api, hbType: "NORMAL",
		billno: p["mch_billno"], mchID: p["mch_id"], wxappid: p["wxappid"], openid: p["re_openid"],
		sendName: p["send_name"], wishing: p["wishing"], actName: p["act_name"], remark: p["remark"],
		sceneID: p["scene_id"], clientIP: p["client_ip"],
		amount: amount, num: num,
		mini: ep.kind == kindMini,
	}
	if ep.kind == kindGroup {
		q.hbType = "GROUP"
	}
	return q
}

// dayStats are one China-time day's totals, for the daily limits.
type dayStats struct {
	merchant int64
	users    map[string]*userDay
}

type userDay struct {
	count  int
	amount int64
}

func dayOf(t time.Time) string { return t.In(chinaTime).Format(time.DateOnly) }

// send is the ledger's side of a send: a repeated billno answers its
// original result, a new one is checked against the limits and paid.
// Refused requests record nothing, so the billno may be sent again (after
// a top-up, or the next day).
func (s *Server) send(ep *endpoint, q sendRequest, p wxpay.Params, pending bool) *answer {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	if rec := s.ledger[q.billno]; rec != nil {
		if msg := conflict(rec, q); msg != "" {
			return failure("FATAL_ERROR", msg, p, false)
		}
		switch rec.Status {
		case wxpay.StatusSending:
			// Still at it: the repeat learns nothing more.
			return failure("PROCESSING", "", p, false)
		case wxpay.StatusFailed:
			return failure("SEND_FAILED", "", p, false)
		}
		return sendSuccess(rec)
	}
	if s.expired(q.billno, now) {
		// The billno's window passed with no record: it cannot pay.
		return failure("SEND_FAILED", "", p, false)
	}
	l := s.limits
	lo, hi := l.MinAmount, l.MaxAmount
	if q.sceneID != "" {
		lo, hi = l.SceneMinAmount, l.SceneMaxAmount
	}
	if q.amount < lo*q.num || q.amount > hi*q.num {
		return failure("MONEY_LIMIT", fmt.Sprintf("红包金额发放限制,每个红包金额必须在%s元到%s元之间", yuan(lo), yuan(hi)), p, false)
	}
	day := s.days[dayOf(now)]
	if day == nil {
		day = &dayStats{users: map[string]*userDay{}}
		s.days[dayOf(now)] = day
	}
	user := day.users[q.openid]
	if user == nil {
		user = &userDay{}
	}
	share := q.amount / q.num // a group red packet's seed user gets about the average
	switch {
	case l.UserDailyCount >= 0 && user.count+1 > l.UserDailyCount:
		return failure("SENDNUM_LIMIT", "", p, false)
	case l.UserDailyAmount >= 0 && user.amount+share > l.UserDailyAmount:
		return failure("RCVDAMOUNT_LIMIT", "", p, false)
	case l.MerchantDailyAmount >= 0 && day.merchant+q.amount > l.MerchantDailyAmount:
		return failure("SENDAMOUNT_LIMIT", "", p, false)
	case s.balance < q.amount:
		return failure("NOTENOUGH", "", p, false)
	}
	listID, err := s.newListID(now)
	if err != nil {
		return failure("SYSTEMERROR", "", p, false)
	}
	rec := &Record{
		API: q.api, HBType: q.hbType,
		MchBillno: q.billno, MchID: q.mchID, WxAppID: q.wxappid, ReOpenID: q.openid, SendName: q.sendName,
		TotalAmount: q.amount, TotalNum: q.num, Wishing: q.wishing, ActName: q.actName, Remark: q.remark,
		SceneID: q.sceneID, ClientIP: q.clientIP,
		SendListID: listID, Status: wxpay.StatusSent, SendTime: now,
		seq: len(s.ledger), sendingSince: now, sentAt: now,
	}
	if pending {
		rec.Status = wxpay.StatusSending
		if f := s.fates[q.billno]; f.Fail {
			rec.Reason = f.Reason
		}
	}
	if q.mini {
		if rec.Package, err = s.newPackage(q.mchID, q.wxappid); err != nil {
			return failure("SYSTEMERROR", "", p, false)
		}
	}
	s.ledger[q.billno] = rec
	s.watch(rec)
	s.payments[q.billno]++
	s.balance -= q.amount
	day.merchant += q.amount
	user.count++
	user.amount += share
	day.users[q.openid] = user
	return sendSuccess(rec)
}

// conflict returns the FATAL_ERROR text when q reuses rec's billno with
// other parameters, "" when q repeats rec.
func conflict(rec *Record, q sendRequest) string {
	switch {
	case rec.ReOpenID != q.openid:
		return "openid和原始单参数不一致"
	case rec.TotalAmount != q.amount:
		return "金额和原始单参数不一致"
	case rec.API != q.api || rec.TotalNum != q.num || rec.WxAppID != q.wxappid:
		return "该订单已经存在并且参数不一致"
	}
	return ""
}

func yuan(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) }

// sendSuccess is WeChat's answer for an accepted red packet.
func sendSuccess(rec *Record) *answer {
	a := &answer{}
	a.add("return_code", "SUCCESS")
	a.add("return_msg", "发放成功")
	a.add("result_code", "SUCCESS")
	a.add("err_code", "SUCCESS")
	a.add("err_code_des", "发放成功")
	a.add("mch_billno", rec.MchBillno)
	a.add("mch_id", rec.MchID)
	a.add("wxappid", rec.WxAppID)
	a.add("re_openid", rec.ReOpenID)
	a.addNumber("total_amount", rec.TotalAmount)
	a.add("send_listid", rec.SendListID)
	a.add("package", rec.Package)
	return a
}

// newListID makes a send_listid shaped like WeChat's: 31 digits, a fixed
// prefix, the China date and 13 random digits. Called under s.mu.
func (s *Server) newListID(now time.Time) (string, error) {
	var raw [13]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return "", err
	}
	buf := make([]byte, 0, 31)
	buf = append(buf, "1000041701"...)
	buf = now.In(chinaTime).AppendFormat(buf, "20060102")
	for _, b := range raw {
		buf = append(buf, '0'+b%10)
	}
	return string(buf), nil
}

// newPackage makes sendminiprogramhb's raw package:
// sendid=<32 hex>&ver=8&sign=<64 hex>&mchid=<mch_id>&appid=<wxappid>.
// Called under s.mu.
func (s *Server) newPackage(mchID, appID string) (string, error) {
	var raw [16]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return "", err
	}
	sendID := hex.EncodeToString(raw[:])
	mac := hmac.New(sha256.New, []byte(s.merchant.APIKey))
	fmt.Fprintf(mac, "sendid=%s&ver=8&mchid=%s&appid=%s", sendID, mchID, appID)
	return "sendid=" + sendID + "&ver=8&sign=" + hex.EncodeToString(mac.Sum(nil)) + "&mchid=" + mchID + "&appid=" + appID, nil
}

// query is gethbinfo: the record of a billno, NOT_FOUND when there is
// none. The appid is not compared with the red packet's wxappid.
func (s *Server) query(p wxpay.Params) *answer {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	rec := s.ledger[p["mch_billno"]]
	if rec == nil {
		return failure("NOT_FOUND", "", p, true)
	}
	a := &answer{}
	a.add("return_code", "SUCCESS")
	a.add("return_msg", "OK")
	a.add("result_code", "SUCCESS")
	a.add("err_code", "SUCCESS")
	a.add("err_code_des", "OK")
	a.add("mch_billno", rec.MchBillno)
	a.add("mch_id", rec.MchID)
	a.add("detail_id", rec.SendListID)
	a.add("status", rec.Status)
	a.add("send_type", "API")
	a.add("hb_type", rec.HBType)
	a.addNumber("total_num", rec.TotalNum)
	a.addNumber("total_amount", rec.TotalAmount)
	a.add("reason", rec.Reason)
	a.add("send_time", rec.SendTime.In(chinaTime).Format(TimeLayout))
	if !rec.RefundTime.IsZero() {
		a.add("refund_time", rec.RefundTime.In(chinaTime).Format(TimeLayout))
		a.addNumber("refund_amount", rec.RefundAmount)
	}
	a.add("wishing", rec.Wishing)
	a.add("remark", rec.Remark)
	a.add("act_name", rec.ActName)
	if len(rec.Receivers) > 0 {
		a.records = make([][]xmlField, 0, len(rec.Receivers))
		for _, rv := range rec.Receivers {
			a.records = append(a.records, []xmlField{
				{name: "openid", value: rv.OpenID},
				{name: "amount", value: fmt.Sprint(rv.Amount), number: true},
				{name: "rcv_time", value: rv.RcvTime.In(chinaTime).Format(TimeLayout)},
			})
		}
	}
	return a
}

// Payments returns how many times money left the balance for billno: 0 or
// 1 when the simulator, and its client, keep WeChat's rule. A red packet
// that ended FAILED after SENDING (Fate.Fail) got its money back and counts
// 0.
func (s *Server) Payments(billno string) int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	return s.payments[billno]
}

// TotalPayments returns how many red packets were paid, all billnos
// together.
func (s *Server) TotalPayments() int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	n := 0
	for _, c := range s.payments {
		n += c
	}
	return n
}

// Record returns a copy of billno's ledger entry.
func (s *Server) Record(billno string) (Record, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	rec := s.ledger[billno]
	if rec == nil {
		return Record{}, false
	}
	return rec.clone(), true
}

// Records returns copies of every ledger entry, oldest first.
func (s *Server) Records() []Record {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	out := make([]Record, 0, len(s.ledger))
	for _, rec := range s.ledger {
		out = append(out, rec.clone())
	}
	slices.SortFunc(out, func(a, b Record) int { return a.seq - b.seq })
	return out
}

// Balance returns the merchant's balance in fen.
func (s *Server) Balance() int64 {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	return s.balance
}

// SetBalance sets the merchant's balance in fen (a top-up, or 0 for
// NOTENOUGH). Refunds due by now are made first, so that they do not
// land on the new balance later.
func (s *Server) SetBalance(fen int64) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	s.balance = fen
}

// Limits returns the limits in force, defaults filled in. Its Balance is
// the starting balance; see Balance for the current one.
func (s *Server) Limits() Limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits
}

// SetLimits replaces the limits (zero fields take their defaults). The
// balance and the day's totals are kept.
func (s *Server) SetLimits(l Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = l.withDefaults()
	s.rateSecond, s.rateCount = 0, 0
}

// validStatuses are the statuses SetStatus accepts (gethbinfo's).
var validStatuses = map[string]bool{
	wxpay.StatusSending: true, wxpay.StatusSent: true, wxpay.StatusFailed: true,
	wxpay.StatusReceived: true, wxpay.StatusRefunding: true, wxpay.StatusRefund: true,
}

// SetStatus moves billno's red packet to status, one of gethbinfo's
// (SENDING, SENT, FAILED, RECEIVED, RFUND_ING, REFUND), whatever the
// Timeline says; the Timeline moves it on from there (SENDING, SENT and
// RFUND_ING count from now). REFUND returns what was not received to the
// balance and sets refund_time and refund_amount; FAILED sets reason and
// moves no money.
func (s *Server) SetStatus(billno, status string) error {
	if !validStatuses[status] {
		return fmt.Errorf("wxpaytest: unknown status %q", status)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	rec := s.ledger[billno]
	if rec == nil {
		return fmt.Errorf("wxpaytest: no red packet %q", billno)
	}
	switch status {
	case wxpay.StatusSending:
		rec.sendingSince = now
	case wxpay.StatusSent:
		rec.sentAt = now
	case wxpay.StatusRefunding:
		rec.refundingAt = now
	case wxpay.StatusRefund:
		s.refund(rec, now)
	case wxpay.StatusFailed:
		if rec.Reason == "" {
			rec.Reason = "发放失败"
		}
	}
	rec.Status = status
	s.watch(rec)
	return nil
}

// Receive records that openid opened amount fen of billno's red packet
// now, adding an hbinfo entry: a scripted claim. amount 0 means the whole
// of a normal red packet. When every share is taken the status becomes
// RECEIVED. It is an error to exceed total_num or total_amount, to
// receive a normal red packet as anyone but its re_openid, or to receive
// one that is not SENT (SENDING, FAILED, or past its claim window:
// RFUND_ING, REFUND).
func (s *Server) Receive(billno, openid string, amount int64) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(now)
	rec := s.ledger[billno]
	if rec == nil {
		return fmt.Errorf("wxpaytest: no red packet %q", billno)
	}
	if rec.Status != wxpay.StatusSent {
		return statusError(billno, rec.Status, "received")
	}
	if amount == 0 && rec.TotalNum == 1 {
		amount = rec.TotalAmount
	}
	if rec.HBType == "NORMAL" && openid != rec.ReOpenID {
		return fmt.Errorf("wxpaytest: red packet %q is for %q only", billno, rec.ReOpenID)
	}
	if amount <= 0 {
		return fmt.Errorf("wxpaytest: amount must be positive")
	}
	var got int64
	for _, rv := range rec.Receivers {
		got += rv.Amount
	}
	if int64(len(rec.Receivers)) >= rec.TotalNum || got+amount > rec.TotalAmount {
		return fmt.Errorf("wxpaytest: red packet %q has %d of %d shares and %d fen left", billno, rec.TotalNum-int64(len(rec.Receivers)), rec.TotalNum, rec.TotalAmount-got)
	}
	rec.Receivers = append(rec.Receivers, Receiver{OpenID: openid, Amount: amount, RcvTime: now})
	if int64(len(rec.Receivers)) == rec.TotalNum {
		rec.Status = wxpay.StatusReceived
		s.watch(rec)
	}
	return nil
}
