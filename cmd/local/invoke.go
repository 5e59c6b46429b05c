package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
)

// functionTimeout is the functions' timeout in template.yaml.
const functionTimeout = 28 * time.Second

var requestSeq atomic.Int64

// invokeFunction runs payload through h the way Lambda does: the
// aws-lambda-go JSON path, a request id, the function's deadline.
func invokeFunction(ctx context.Context, h *handler.Handler, payload []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, functionTimeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID: fmt.Sprintf("local-%04d", requestSeq.Add(1)),
	})
	return lambda.NewHandler(h).Invoke(ctx, payload)
}

// invokeSamples invokes every function on each of its samples in
// eventsDir/<function>/ and prints the answers, then repeats a send to show
// the ledger (showLedger) and, when every function ran, settles an unknown
// send with the reconciler (showReconcile). It fails if any sample's answer
// is not a success, or the repeats or the reconciler's steps are not
// answered as they should be, so it doubles as a smoke test.
func invokeSamples(ctx context.Context, eventsDir, only string, handlers map[string]*handler.Handler, env *environment, out io.Writer) error {
	var failed, total int
	direct := make(map[string]directRun) // each function's successful direct invoke
	for _, op := range functions {
		if only != "" && op.Name() != only {
			continue
		}
		files, err := filepath.Glob(filepath.Join(eventsDir, op.Name(), "*.json"))
		if err != nil || len(files) == 0 {
			return fmt.Errorf("no samples in %s: run from the repository root or pass -events", filepath.Join(eventsDir, op.Name()))
		}
		// The direct invoke first: its answer is printed in full.
		slices.SortStableFunc(files, func(a, b string) int {
			return boolInt(!strings.HasPrefix(filepath.Base(a), "direct")) - boolInt(!strings.HasPrefix(filepath.Base(b), "direct"))
		})
		fmt.Fprintf(out, "── %s (%s) ──\n", op.Name(), op.API())
		for i, file := range files {
			payload, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			answer, err := invokeFunction(ctx, handlers[op.Name()], payload)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			total++
			status, body, ok := summarize(answer)
			if !ok {
				failed++
			}
			fmt.Fprintf(out, "  %-24s %s\n", filepath.Base(file), status)
			if i == 0 || !ok {
				fmt.Fprintf(out, "%s\n", indent(body, "      "))
			}
			if ok && filepath.Base(file) == "direct.json" {
				direct[op.Name()] = directRun{file: file, payload: payload, answer: body}
			}
		}
		fmt.Fprintln(out)
	}
	repeats, unexpected := showLedger(ctx, handlers, direct, env, out)
	total += repeats
	failed += unexpected
	fmt.Fprintf(out, "%d invocations, %d not as expected; the simulator recorded %d red packets (%d requests, %d TLS handshakes).\n\n",
		total, failed, env.sim.TotalPayments(), env.sim.Requests(), env.sim.Handshakes())
	if failed > 0 {
		return fmt.Errorf("%d of %d invocations were not answered as expected", failed, total)
	}
	if only == "" {
		if n := showReconcile(ctx, handlers, eventsDir, env, out); n > 0 {
			return fmt.Errorf("the reconciler's section: %d step(s) not as expected", n)
		}
	}
	return nil
}

// summarize describes an answer of any source: a status line, the JSON
// body to show, and whether it was a success.
func summarize(answer []byte) (status string, body []byte, ok bool) {
	var probe struct {
		StatusCode *int `json:"statusCode"`
		Body       string
		Failures   *[]struct {
			ItemIdentifier string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(answer, &probe); err != nil {
		return "unreadable answer", answer, false
	}
	switch {
	case probe.StatusCode != nil:
		ok = *probe.StatusCode == 200
		return fmt.Sprintf("HTTP %d", *probe.StatusCode), []byte(probe.Body), ok
	case probe.Failures != nil:
		n := len(*probe.Failures)
		return fmt.Sprintf("SQS batch, %d record(s) reported for retry", n), answer, n == 0
	case probe.Error != nil:
		return "error", answer, false
	}
	return "OK", answer, true
}

// indent pretty-prints JSON with prefix on every line.
func indent(body []byte, prefix string) string {
	var b bytes.Buffer
	if err := json.Indent(&b, body, prefix, "  "); err != nil {
		return prefix + string(body)
	}
	return prefix + b.String()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
