package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
)

// replayFunctions are the functions whose direct sample showLedger may
// repeat, in order of preference: the first that was run is used.
var replayFunctions = []handler.Operation{handler.SendMini, handler.Send, handler.SendGroup}

// directRun is a function's direct sample and its successful answer.
type directRun struct {
	file    string
	payload []byte
	answer  []byte
}

// directAnswer is what showLedger reads in a direct invoke's answer.
type directAnswer struct {
	MchBillno   string `json:"mch_billno"`
	SendListID  string `json:"send_listid"`
	TotalAmount int64  `json:"total_amount"`
	Replayed    bool   `json:"replayed"`
	Error       *struct {
		Code string `json:"code"`
	} `json:"error"`
}

// showLedger shows the ledger at work, after the samples: it sends a
// function's direct sample again unchanged, which the ledger answers with
// the stored answer ("replayed": true, the same send_listid) and no request
// to WeChat, then the same billno with another total_amount, which is
// refused with BILLNO_CONFLICT and sends nothing. It returns how many
// invocations it made and how many were not answered so.
func showLedger(ctx context.Context, handlers map[string]*handler.Handler, direct map[string]directRun, env *environment, out io.Writer) (total, unexpected int) {
	var op handler.Operation
	var first directRun
	for _, o := range replayFunctions {
		if d, ok := direct[o.Name()]; ok {
			op, first = o, d
			break
		}
	}
	if op == nil {
		return 0, 0 // no send function's direct sample succeeded: nothing to repeat
	}
	var sent directAnswer
	if err := json.Unmarshal(first.answer, &sent); err != nil || sent.MchBillno == "" || sent.SendListID == "" {
		fmt.Fprintf(out, "── ledger ──\n  cannot read the answer to %s\n\n", first.file)
		return 0, 1
	}
	h, name := handlers[op.Name()], filepath.Base(first.file)
	fmt.Fprintf(out, "── ledger (%s %s again) ──\n", op.Name(), name)

	// The same request again: answered from the ledger.
	fmt.Fprintf(out, "  repeat of %s: answered from the ledger\n", sent.MchBillno)
	before := env.sim.Requests()
	answer, err := invokeFunction(ctx, h, first.payload)
	total++
	var got directAnswer
	var problems []string
	switch {
	case err != nil:
		problems = append(problems, err.Error())
	case json.Unmarshal(answer, &got) != nil:
		problems = append(problems, "unreadable answer")
	default:
		if got.Error != nil {
			problems = append(problems, "error "+got.Error.Code)
		}
		if !got.Replayed {
			problems = append(problems, `no "replayed": true`)
		}
		if got.SendListID != sent.SendListID {
			problems = append(problems, fmt.Sprintf("send_listid %q, not %q", got.SendListID, sent.SendListID))
		}
	}
	if n := env.sim.Requests() - before; n != 0 {
		problems = append(problems, fmt.Sprintf("WeChat saw %d new request(s)", n))
	}
	unexpected += report(out, name, `OK: "replayed": true, same send_listid, no request to WeChat`, problems, answer)

	// The same billno with another amount: refused, nothing sent.
	other := sent.TotalAmount + 100
	if other > 20000 {
		other = sent.TotalAmount - 1 // stay in the range that needs no scene_id
	}
	fmt.Fprintf(out, "  same billno, other amount (total_amount %d, not %d): refused\n", other, sent.TotalAmount)
	payload, err := withField(first.payload, "total_amount", other)
	if err != nil {
		fmt.Fprintf(out, "  %-24s cannot change total_amount: %v\n\n", name, err)
		return total, unexpected + 1
	}
	before = env.sim.Requests()
	answer, err = invokeFunction(ctx, h, payload)
	total++
	got, problems = directAnswer{}, nil
	switch {
	case err != nil:
		problems = append(problems, err.Error())
	case json.Unmarshal(answer, &got) != nil:
		problems = append(problems, "unreadable answer")
	case got.Error == nil:
		problems = append(problems, "not refused")
	case got.Error.Code != "BILLNO_CONFLICT":
		problems = append(problems, "error "+got.Error.Code+", not BILLNO_CONFLICT")
	}
	if n := env.sim.Requests() - before; n != 0 {
		problems = append(problems, fmt.Sprintf("WeChat saw %d new request(s)", n))
	}
	unexpected += report(out, name, "refused: BILLNO_CONFLICT, no request to WeChat", problems, answer)
	fmt.Fprintln(out)
	return total, unexpected
}

// report prints an invocation's status line, ok or its problems, and its
// answer; it returns 1 when there are problems.
func report(out io.Writer, name, ok string, problems []string, answer []byte) int {
	if len(problems) > 0 {
		fmt.Fprintf(out, "  %-24s NOT AS EXPECTED: %s\n", name, strings.Join(problems, "; "))
	} else {
		fmt.Fprintf(out, "  %-24s %s\n", name, ok)
	}
	if len(answer) > 0 {
		fmt.Fprintf(out, "%s\n", indent(answer, "      "))
	}
	return min(len(problems), 1)
}

// withField returns the JSON request payload with its member name set to
// value, its other members as they are. The payload must have the member:
// a sample without it is not the request meant.
func withField(payload []byte, name string, value any) ([]byte, error) {
	var req map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	if _, ok := req[name]; !ok {
		return nil, fmt.Errorf("the sample has no %s", name)
	}
	req[name] = value
	return json.Marshal(req)
}
