package wxpaytest

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/redpacket-lambda/wxredpack/pkg/wxpay"
)

// apiKind is which red packet call an endpoint is.
type apiKind int

const (
	kindGroup apiKind = iota
	kindMini
	kindSend
	kindQuery
)

// endpoint is one APIv2 path and the fields it knows.
type endpoint struct {
	path  string
	api   string
	kind  apiKind
	known map[string]bool
}

func newEndpoint(path, api string, kind apiKind, fields []string) *endpoint {
	known := map[string]bool{"sign": true}
	for _, f := range fields {
		known[f] = true
	}
	return &endpoint{path: path, api: api, kind: kind, known: known}
}

var endpoints = map[string]*endpoint{
	wxpay.PathSendGroupRedpack:  newEndpoint(wxpay.PathSendGroupRedpack, "sendgroupredpack", kindGroup, wxpay.SendGroupFields),
	wxpay.PathSendMiniProgramHB: newEndpoint(wxpay.PathSendMiniProgramHB, "sendminiprogramhb", kindMini, wxpay.SendMiniFields),
	wxpay.PathSendRedpack:       newEndpoint(wxpay.PathSendRedpack, "sendredpack", kindSend, wxpay.SendFields),
	wxpay.PathGetHBInfo:         newEndpoint(wxpay.PathGetHBInfo, "gethbinfo", kindQuery, wxpay.QueryFields),
}

// The gateway's HTML 400 details, as nginx words them.
const (
	noCertDetail  = "No required SSL certificate was sent"
	badCertDetail = "The SSL certificate error"
)

func (s *Server) handler(backup bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.enter() {
			return
		}
		defer s.inflight.Done()
		s.handle(w, r, backup)
	}
}

// handle runs one request through the gateway, the fault injector and the
// service.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, backup bool) {
	s.countRequest(r.URL.Path, backup)
	ep := endpoints[r.URL.Path]
	if ep == nil {
		s.log(r, "", "HTTP 404")
		writeHTML(w, http.StatusNotFound, nginxPage(http.StatusNotFound, ""))
		return
	}
	if r.Method != http.MethodPost {
		s.log(r, "", "HTTP 405")
		writeHTML(w, http.StatusMethodNotAllowed, nginxPage(http.StatusMethodNotAllowed, ""))
		return
	}
	leaf, detail := s.gateway(r)
	if leaf == nil {
		s.log(r, "", "HTTP 400 "+detail)
		writeHTML(w, http.StatusBadRequest, nginxPage(http.StatusBadRequest, detail))
		return
	}
	fault, faulted := s.takeNextFault()

	body, err := io.ReadAll(io.LimitReader(r.Body, wxpay.MaxBodySize+1))
	if err != nil {
		return // the client went away mid-request
	}
	query := ep.kind == kindQuery
	var params wxpay.Params
	var ans *answer
	if len(body) > wxpay.MaxBodySize {
		ans = failure("XML_ERROR", "输入xml参数格式错误,请求包过大", nil, query)
	} else if params, err = wxpay.DecodeXML(body); err != nil {
		params = nil
		ans = failure("XML_ERROR", "", nil, query)
	}
	billno := params["mch_billno"]
	if billno != "" {
		s.countBillno(billno)
		if !query {
			s.noteTry(billno, s.now())
		}
		if !faulted {
			fault, faulted = s.takeBillnoFault(billno, !query)
		}
	}
	if faulted {
		switch {
		case fault.Kind == FaultNone:
			if !s.wait(r.Context(), fault.Delay) {
				// A slow service: the client gave up before it got to
				// the request.
				hijackReset(w)
				return
			}
		case !fault.Kind.processes():
			s.spoil(w, r, ep, fault, params, nil)
			return
		}
	}
	if ans == nil {
		ans = s.process(ep, params, leaf, remoteAddr(r), faulted && fault.Kind == FaultProcessingAfterPay)
	}
	if faulted && fault.Kind != FaultNone {
		s.spoil(w, r, ep, fault, params, ans)
		return
	}
	s.log(r, billno, ans.outcome())
	writeXML(w, ans.bytes())
}

func (a *answer) outcome() string {
	if a.errCode == "" {
		return "SUCCESS"
	}
	return a.errCode
}

func (s *Server) log(r *http.Request, billno, outcome string) {
	if s.logf == nil {
		return
	}
	s.logf("wxpaytest: %s %s%s mch_billno=%q -> %s", r.Method, r.Host, r.URL.Path, billno, outcome)
}

// gateway judges the client certificate as WeChat's nginx does: it must
// be there, chain to the merchant CA and be valid on the server's clock.
// It returns the leaf, or nil and the 400 page's detail.
func (s *Server) gateway(r *http.Request) (*x509.Certificate, string) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, noCertDetail
	}
	chain := r.TLS.PeerCertificates
	leaf := chain[0]
	if !s.trusted(leaf, chain[1:]) {
		return nil, badCertDetail
	}
	if now := s.now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, badCertDetail
	}
	return leaf, ""
}

// trusted reports, once per certificate, whether leaf chains to the
// merchant CA for client authentication. Validity dates are checked apart,
// on the injected clock.
func (s *Server) trusted(leaf *x509.Certificate, intermediates []*x509.Certificate) bool {
	fp := fingerprint(leaf.Raw)
	if v, ok := s.verified.Load(fp); ok {
		return v.(bool)
	}
	opts := x509.VerifyOptions{
		Roots:       s.merchantPool,
		CurrentTime: leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(intermediates) > 0 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range intermediates {
			opts.Intermediates.AddCert(c)
		}
	}
	_, err := leaf.Verify(opts)
	s.verified.Store(fp, err == nil)
	return err == nil
}

// spoil answers a faulted request. ans is the real answer for the kinds
// that process the request, nil for the others.
func (s *Server) spoil(w http.ResponseWriter, r *http.Request, ep *endpoint, f Fault, params wxpay.Params, ans *answer) {
	s.log(r, params["mch_billno"], f.Kind.String())
	if !s.wait(r.Context(), f.Delay) {
		// The client gave up, or the server is closing: answer nothing
		// (returning would send an empty 200 to a client still reading).
		hijackReset(w)
		return
	}
	query := ep.kind == kindQuery
	switch f.Kind {
	case FaultSystemError, FaultSystemErrorAfterPay:
		writeXML(w, failure("SYSTEMERROR", "", params, query).bytes())
	case FaultProcessing, FaultProcessingAfterPay:
		writeXML(w, failure("PROCESSING", "", params, query).bytes())
	case FaultFreqLimit:
		writeXML(w, failure("FREQ_LIMIT", "", params, query).bytes())
	case FaultErrCode:
		code := f.Code
		if code == "" {
			code = "SYSTEMERROR"
		}
		writeXML(w, failure(code, f.Message, params, query).bytes())
	case FaultDelay:
		writeXML(w, ans.bytes())
	case FaultResetBeforeLedger, FaultResetAfterLedger:
		hijackReset(w)
	case FaultHTTP5xx:
		status := f.Status
		if status == 0 {
			status = http.StatusBadGateway
		}
		writeHTML(w, status, nginxPage(status, ""))
	case FaultHTMLPage:
		status := f.Status
		if status == 0 {
			status = http.StatusOK
		}
		writeHTML(w, status, []byte(busyPage))
	case FaultGarbledXML:
		writeXML(w, garble(ans.bytes()))
	case FaultTruncatedXML:
		b := ans.bytes()
		writeXML(w, b[:len(b)/2])
	default:
		writeXML(w, ans.bytes())
	}
}

// hijackReset drops the request's connection with a TCP reset, answering
// nothing.
func hijackReset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	resetTCP(conn)
}

// wait sleeps for d; false when the request's context ends or the server
// closes first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

// process answers a readable request as WeChat's service does: the
// certificate against mch_id, the fields the API knows, the signature, the
// caller's address against the merchant's allowlist, the request rate, the
// parameters, then the business.
func (s *Server) process(ep *endpoint, p wxpay.Params, leaf *x509.Certificate, remote netip.Addr, pending bool) *answer {
	query := ep.kind == kindQuery
	mchID := p["mch_id"]
	if mchID == "" {
		return failure("PARAM_ERROR", "mch_id字段必填", p, query)
	}
	s.mu.Lock()
	revoked := s.revoked[fingerprint(leaf.Raw)]
	merchantID, apiKey := s.merchant.MchID, s.merchant.APIKey
	s.mu.Unlock()
	if revoked || !wxpay.CertificateMatchesMchID(leaf, mchID) {
		return failure("CA_ERROR", "", p, query)
	}
	if mchID != merchantID {
		return failure("PARAM_ERROR", "mch_id参数错误,该商户号未开通红包", p, query)
	}
	switch p["sign_type"] {
	case "", string(wxpay.SignMD5):
	default:
		return failure("SIGN_ERROR", "签名错误,红包接口只支持MD5签名", p, query)
	}
	for name, value := range p {
		if value != "" && !ep.known[name] && name != "sign_type" {
			// WeChat signs only the fields it knows: a signed extra
			// field makes the signatures differ.
			return failure("SIGN_ERROR", "", p, query)
		}
	}
	if !wxpay.VerifySign(p, apiKey) {
		return failure("SIGN_ERROR", "", p, query)
	}
	if !s.callerAllowed(remote) {
		return failure("NO_AUTH", NoAuthCallerIP, p, query)
	}
	if !s.allowRequest() {
		return failure("FREQ_LIMIT", "", p, query)
	}
	if msg := validate(ep, p); msg != "" {
		return failure("PARAM_ERROR", msg, p, query)
	}
	if query {
		return s.query(p)
	}
	return s.send(ep, newSendRequest(ep, p), p, pending)
}

// allowRequest counts a request against Limits.RequestsPerSecond.
func (s *Server) allowRequest() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rps := s.limits.RequestsPerSecond
	if rps <= 0 {
		return true
	}
	sec := s.now().Unix()
	if sec != s.rateSecond {
		s.rateSecond, s.rateCount = sec, 0
	}
	if s.rateCount >= rps {
		return false
	}
	s.rateCount++
	return true
}

// fieldRule is how WeChat checks one text field: presence and length in
// characters.
type fieldRule struct {
	name     string
	required bool
	max      int
}

var (
	sendRules = []fieldRule{
		{"nonce_str", true, 32}, {"mch_billno", true, 28}, {"wxappid", true, 32},
		{"send_name", true, 32}, {"re_openid", true, 32}, {"total_amount", true, 10},
		{"total_num", true, 10}, {"wishing", true, 128}, {"act_name", true, 32},
		{"remark", true, 256}, {"scene_id", false, 32}, {"risk_info", false, 128},
		{"msgappid", false, 32}, {"sub_mch_id", false, 32}, {"consume_mch_id", false, 32},
	}
	groupRules = []fieldRule{{"amt_type", true, 32}}
	miniRules  = []fieldRule{{"notify_way", true, 32}}
	plainRules = []fieldRule{{"client_ip", true, 15}}
	queryRules = []fieldRule{
		{"nonce_str", true, 32}, {"mch_billno", true, 28}, {"appid", true, 32}, {"bill_type", true, 32},
	}
)

// validate returns WeChat's PARAM_ERROR text for the first bad field of
// p, which names the field, or "" when p is acceptable.
func validate(ep *endpoint, p wxpay.Params) string {
	var rules [][]fieldRule
	switch ep.kind {
	case kindQuery:
		rules = [][]fieldRule{queryRules}
	case kindGroup:
		rules = [][]fieldRule{sendRules, groupRules}
	case kindMini:
		rules = [][]fieldRule{sendRules, miniRules}
	case kindSend:
		rules = [][]fieldRule{sendRules, plainRules}
	}
	for _, list := range rules {
		for _, rule := range list {
			v := p[rule.name]
			if v == "" {
				if rule.required {
					return rule.name + "字段必填"
				}
				continue
			}
			if utf8.RuneCountInString(v) > rule.max {
				return rule.name + "字段长度超过限制,最长" + strconv.Itoa(rule.max) + "个字符"
			}
		}
	}
	if !validBillno(p["mch_billno"]) {
		return "mch_billno字段格式错误,只能由数字和字母组成"
	}
	if ep.kind == kindQuery {
		if p["bill_type"] != "MCHT" {
			return "bill_type字段错误,只能为MCHT"
		}
		return ""
	}
	amount, ok := positive(p["total_amount"])
	if !ok {
		return "total_amount字段错误,必须为正整数,单位分"
	}
	num, ok := positive(p["total_num"])
	if !ok {
		return "total_num字段错误,必须为正整数"
	}
	switch ep.kind {
	case kindGroup:
		if num < 3 || num > 20 {
			return "total_num字段错误,裂变红包发放总人数必须在3到20之间"
		}
		if p["amt_type"] != wxpay.AmtTypeAllRand {
			return "amt_type字段错误,只能为ALL_RAND"
		}
	case kindMini:
		if num != 1 {
			return "total_num字段错误,小程序红包发放总人数必须为1"
		}
		if p["notify_way"] != wxpay.NotifyWayMiniProgram {
			return "notify_way字段错误,只能为MINI_PROGRAM_JSAPI"
		}
	case kindSend:
		if num != 1 {
			return "total_num字段错误,普通红包发放总人数必须为1"
		}
		if addr, err := netip.ParseAddr(p["client_ip"]); err != nil || !addr.Is4() {
			return "client_ip字段格式错误,必须为IPv4地址"
		}
	}
	scene := p["scene_id"]
	if scene != "" && !sceneIDs[scene] {
		return "scene_id字段错误,取值为PRODUCT_1到PRODUCT_8"
	}
	if scene == "" && (amount < sceneFreeMin*num || amount > sceneFreeMax*num) {
		return "红包金额大于200或者小于1元时,scene_id字段必填"
	}
	for _, name := range []string{"sub_mch_id", "consume_mch_id"} {
		if v := p[name]; v != "" && !isDigits(v) {
			return name + "字段格式错误,必须为商户号"
		}
	}
	return ""
}

// The amounts (fen, per red packet) outside which scene_id is required.
const (
	sceneFreeMin = 100
	sceneFreeMax = 20000
)

var sceneIDs = map[string]bool{
	"PRODUCT_1": true, "PRODUCT_2": true, "PRODUCT_3": true, "PRODUCT_4": true,
	"PRODUCT_5": true, "PRODUCT_6": true, "PRODUCT_7": true, "PRODUCT_8": true,
}

func validBillno(b string) bool {
	if b == "" || len(b) > 28 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// positive parses a whole positive number of at most 10 digits, as
// WeChat's int fields are.
func positive(s string) (int64, bool) {
	if !isDigits(s) || len(s) > 10 {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}
