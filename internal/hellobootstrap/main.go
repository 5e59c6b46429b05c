// Command hellobootstrap is the cold-start baseline of functions/bench_test.go:
// a hello-world aws-lambda-go function, built like the real bootstraps
// (-tags lambda.norpc), that answers its first event after the same single
// mutual TLS call the real functions make to WeChat Pay. A cold start of a
// real function, compared with this one, shows what the project adds: the
// AWS SDK, the Secrets Manager fetch and the WeChat Pay client.
//
// It reads HELLO_URL (the URL to POST to), HELLO_CERT_FILE and
// HELLO_KEY_FILE (the client certificate and key, PEM). The server is
// verified against the system roots, which honour SSL_CERT_FILE. It posts
// the event's "body" when it has one (a benchmark hands it the very bytes
// a real function would send), else a fixed XML. Nothing here is for
// production.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

var (
	once   sync.Once
	client *http.Client
	errC   error
)

// mtlsClient loads the client certificate on first use, as the real
// functions fetch their credentials on their first invocation.
func mtlsClient() (*http.Client, error) {
	once.Do(func() {
		cert, err := tls.LoadX509KeyPair(os.Getenv("HELLO_CERT_FILE"), os.Getenv("HELLO_KEY_FILE"))
		if err != nil {
			errC = err
			return
		}
		client = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
			},
		}
	})
	return client, errC
}

// event is what the hello bootstrap reads of its event.
type event struct {
	Body string `json:"body"`
}

func handle(ctx context.Context, ev event) (map[string]any, error) {
	c, err := mtlsClient()
	if err != nil {
		return nil, fmt.Errorf("hello: client certificate: %w", err)
	}
	body := ev.Body
	if body == "" {
		body = "<xml><mch_billno>HELLO0001</mch_billno></xml>"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, os.Getenv("HELLO_URL"), strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return map[string]any{"hello": "world", "status": resp.StatusCode, "bytes": n}, nil
}

func main() {
	lambda.Start(handle)
}
