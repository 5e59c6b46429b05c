package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/redpacket-lambda/wxredpack/internal/handler"
)

// routes are the API's routes, as template.yaml declares them.
var routes = []struct {
	pattern, function string
}{
	{"POST /redpacks/group", "sendgroup"},
	{"POST /redpacks/mini", "sendmini"},
	{"POST /redpacks", "send"},
	{"GET /redpacks/{mch_billno}", "query"},
}

// serve answers the API routes on addr, turning each HTTP request into the
// API Gateway REST proxy event the function receives when deployed (what
// sam local start-api does). IAM authorisation is not checked locally. The
// handlers share the run's memory ledger, so a repeated send is replayed.
func serve(ctx context.Context, addr string, handlers map[string]*handler.Handler, env *environment, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: newMux(ctx, handlers), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "Serving on http://%s (Ctrl-C to stop):\n", ln.Addr())
	for _, r := range routes {
		fmt.Fprintf(out, "  %-28s -> %s\n", r.pattern, r.function)
	}
	fmt.Fprintf(out, "\nTry:\n  curl -s http://%s/redpacks/mini -d @events/sendmini/direct.json\n", ln.Addr())
	fmt.Fprintf(out, "  curl -s 'http://%s/redpacks/MINI20261123000007?appid=wx8888888888888888'\n", ln.Addr())
	fmt.Fprintf(out, "The functions share an in-memory ledger: send the same body again and the answer is replayed from it.\n")
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newMux routes each API path to its function.
func newMux(ctx context.Context, handlers map[string]*handler.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range routes {
		h := handlers[r.function]
		mux.HandleFunc(r.pattern, func(w http.ResponseWriter, req *http.Request) {
			serveFunction(ctx, h, w, req)
		})
	}
	return mux
}

// serveFunction invokes h with the REST proxy event of req and writes the
// function's answer back.
func serveFunction(ctx context.Context, h *handler.Handler, w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read the request body", http.StatusBadRequest)
		return
	}
	ev := events.APIGatewayProxyRequest{
		Resource:              req.Pattern,
		Path:                  req.URL.Path,
		HTTPMethod:            req.Method,
		Headers:               map[string]string{"Content-Type": req.Header.Get("Content-Type")},
		QueryStringParameters: map[string]string{},
		PathParameters:        map[string]string{},
		RequestContext:        events.APIGatewayProxyRequestContext{RequestID: "local", HTTPMethod: req.Method, Stage: "local"},
		Body:                  string(body),
	}
	for k, v := range req.URL.Query() {
		ev.QueryStringParameters[k] = v[0]
	}
	if billno := req.PathValue("mch_billno"); billno != "" {
		ev.PathParameters["mch_billno"] = billno
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	answer, err := invokeFunction(ctx, h, payload)
	if err != nil {
		http.Error(w, "function failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(answer, &resp); err != nil {
		http.Error(w, "unreadable function answer", http.StatusBadGateway)
		return
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.StatusCode)
	io.WriteString(w, resp.Body)
	io.WriteString(w, "\n")
}
