package wxpaytest

import (
	"strconv"
	"time"
)

// FaultKind is a way WeChat Pay, or the network on the way, misbehaves.
type FaultKind int

// The faults. "Nothing recorded" faults answer before the request is
// processed; the others process it as usual (the ledger is written when
// the request would have paid) and then spoil the answer.
const (
	// FaultNone is no fault: a Fault{} in a FailBillno script lets that
	// request through. With a Delay, the request waits that long before it
	// is processed, and is dropped unprocessed (nothing recorded) if the
	// client gives up first: a slow service, where FaultDelay is a slow
	// answer.
	FaultNone FaultKind = iota
	// FaultSystemError answers err_code SYSTEMERROR; nothing recorded.
	FaultSystemError
	// FaultSystemErrorAfterPay processes the request, then answers
	// SYSTEMERROR: the payment is recorded.
	FaultSystemErrorAfterPay
	// FaultProcessing answers err_code PROCESSING; nothing recorded.
	FaultProcessing
	// FaultProcessingAfterPay processes the request, then answers
	// PROCESSING; a new red packet's status is SENDING, until the
	// Timeline (or its Fate) makes it SENT or FAILED.
	FaultProcessingAfterPay
	// FaultDelay processes the request at once and holds the answer for
	// Fault.Delay, or until the client gives up: the payment is recorded
	// even when the client never sees the answer.
	FaultDelay
	// FaultResetBeforeLedger reads the request and resets the TCP
	// connection without answering; nothing recorded.
	FaultResetBeforeLedger
	// FaultResetAfterLedger processes the request, then resets the
	// connection without answering: the payment is recorded.
	FaultResetAfterLedger
	// FaultHTTP5xx answers an HTML error page from the gateway with
	// Fault.Status (default 502); nothing recorded.
	FaultHTTP5xx
	// FaultHTMLPage answers an HTML "system busy" page with Fault.Status
	// (default 200), as WeChat's front end sometimes does; nothing
	// recorded.
	FaultHTMLPage
	// FaultGarbledXML processes the request, then answers its XML with a
	// broken tag.
	FaultGarbledXML
	// FaultTruncatedXML processes the request, then answers the first half
	// of its XML.
	FaultTruncatedXML
	// FaultFreqLimit answers err_code FREQ_LIMIT; nothing recorded.
	FaultFreqLimit
	// FaultErrCode answers err_code Fault.Code (with Fault.Message, or
	// WeChat's text for known codes); nothing recorded.
	FaultErrCode
)

var faultNames = [...]string{
	FaultNone:                "FaultNone",
	FaultSystemError:         "FaultSystemError",
	FaultSystemErrorAfterPay: "FaultSystemErrorAfterPay",
	FaultProcessing:          "FaultProcessing",
	FaultProcessingAfterPay:  "FaultProcessingAfterPay",
	FaultDelay:               "FaultDelay",
	FaultResetBeforeLedger:   "FaultResetBeforeLedger",
	FaultResetAfterLedger:    "FaultResetAfterLedger",
	FaultHTTP5xx:             "FaultHTTP5xx",
	FaultHTMLPage:            "FaultHTMLPage",
	FaultGarbledXML:          "FaultGarbledXML",
	FaultTruncatedXML:        "FaultTruncatedXML",
	FaultFreqLimit:           "FaultFreqLimit",
	FaultErrCode:             "FaultErrCode",
}

// String returns the constant's name.
func (k FaultKind) String() string {
	if k >= 0 && int(k) < len(faultNames) {
		return faultNames[k]
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// processes reports whether a fault of this kind lets the request be
// processed (and perhaps paid) before it spoils the answer.
func (k FaultKind) processes() bool {
	switch k {
	case FaultNone, FaultSystemErrorAfterPay, FaultProcessingAfterPay, FaultDelay,
		FaultResetAfterLedger, FaultGarbledXML, FaultTruncatedXML:
		return true
	}
	return false
}

// Fault is one injected misbehaviour.
type Fault struct {
	// Kind is what goes wrong.
	Kind FaultKind
	// Delay is how long FaultDelay holds the answer, and how long
	// FaultNone holds the request before processing it. For other kinds
	// the spoiled answer (or the reset) comes after this delay. Waits end
	// early when the client goes away or the server closes.
	Delay time.Duration
	// Code is FaultErrCode's err_code, such as "NOTENOUGH".
	Code string
	// Message is FaultErrCode's err_code_des; WeChat's text for the code
	// when empty.
	Message string
	// Status is the HTTP status of FaultHTTP5xx (default 502) and
	// FaultHTMLPage (default 200).
	Status int
}

// FailNext makes the next n requests that pass the TLS gateway, to any
// endpoint, suffer f. Calls queue up: FailNext(1, a) then FailNext(1, b)
// spoils one request with a, the following with b.
func (s *Server) FailNext(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.nextFaults = append(s.nextFaults, f)
	}
}

// FailBillno scripts the requests carrying billno: the first one suffers
// faults[0], the second faults[1], and so on; later ones are served
// normally. Further calls append to the script. A request takes at most
// one fault: one queued by FailNext comes first and leaves the script
// untouched.
func (s *Server) FailBillno(billno string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.billnoFaults[billno] = append(s.billnoFaults[billno], faults...)
}

// FailSends scripts the send requests carrying billno as FailBillno does,
// leaving its gethbinfo queries alone: a billno whose every send fails
// (before the payment, say) while its queries answer NOT_FOUND. A request
// takes at most one fault: FailNext's first, then FailBillno's script,
// then this one.
func (s *Server) FailSends(billno string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendFaults[billno] = append(s.sendFaults[billno], faults...)
}

// ClearFaults drops every queued and scripted fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextFaults = nil
	clear(s.billnoFaults)
	clear(s.sendFaults)
}

// takeNextFault pops the FailNext queue.
func (s *Server) takeNextFault() (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.nextFaults) == 0 {
		return Fault{}, false
	}
	f := s.nextFaults[0]
	s.nextFaults = s.nextFaults[1:]
	return f, true
}

// takeBillnoFault pops billno's script, then (for a send) its send
// script.
func (s *Server) takeBillnoFault(billno string, send bool) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := pop(s.billnoFaults, billno); ok {
		return f, true
	}
	if send {
		return pop(s.sendFaults, billno)
	}
	return Fault{}, false
}

// pop takes the first fault of key's script in scripts.
func pop(scripts map[string][]Fault, key string) (Fault, bool) {
	script := scripts[key]
	if len(script) == 0 {
		return Fault{}, false
	}
	f := script[0]
	if len(script) == 1 {
		delete(scripts, key)
	} else {
		scripts[key] = script[1:]
	}
	return f, true
}
