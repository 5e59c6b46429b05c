//go:build unix

package credstore

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// startMoto starts moto_server on a free loopback port and returns its
// URL. Without moto_server on PATH the test is skipped, unless CI=true:
// then it fails, so that CI cannot pass without having run it.
func startMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("moto_server is not on PATH (CI=true: not skipping): %v", err)
		}
		t.Skipf("moto_server is not on PATH: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	var out bytes.Buffer
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, to end it with any children
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})

	url := "http://127.0.0.1:" + strconv.Itoa(port)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return url
		}
		select {
		case <-exited:
			t.Fatalf("moto_server exited early: %s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not answer within 30 s: %v\n%s", err, out.String())
		}
	}
}

func TestMotoServer(t *testing.T) {
	url := startMoto(t)
	ctx := context.Background()
	m1 := newMerchant(t, testMchID, certOpts{})
	m2 := newMerchant(t, testMchID, certOpts{rsa: true})

	admin := sdkClient(url)
	created, err := admin.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String("prod/wxpay/merchant"),
		SecretString: aws.String(m1.pemSecret()),
	})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}

	for _, id := range []string{"prod/wxpay/merchant", aws.ToString(created.ARN)} {
		t.Run(id, func(t *testing.T) {
			sdkEnv(t, url)
			t.Setenv("WXPAY_SECRET_ID", id)
			s, err := FromEnv(ctx, offlineClient, discard())
			if err != nil {
				t.Fatal(err)
			}
			c1, err := s.Client(ctx)
			if err != nil {
				t.Fatalf("Client: %v", err)
			}
			if c1.MchID() != testMchID || s.Fetches() != 1 {
				t.Fatalf("MchID %q, %d fetches", c1.MchID(), s.Fetches())
			}
			// Unchanged secret: same client.
			if c, err := s.Refresh(ctx, c1); err != nil || c != c1 {
				t.Fatalf("Refresh, unchanged = %p, %v", c, err)
			}
		})
	}

	// Rotation through moto: PutSecretValue, then a forced refresh sees it.
	sdkEnv(t, url)
	t.Setenv("WXPAY_SECRET_ID", "prod/wxpay/merchant")
	s, err := FromEnv(ctx, offlineClient, discard())
	if err != nil {
		t.Fatal(err)
	}
	c1, err := s.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:     aws.String("prod/wxpay/merchant"),
		SecretString: aws.String(m2.pemSecret()),
	}); err != nil {
		t.Fatalf("PutSecretValue: %v", err)
	}
	c2, err := s.Refresh(ctx, c1)
	if err != nil || c2 == c1 {
		t.Fatalf("Refresh after rotation = %p (old %p), %v", c2, c1, err)
	}

	// A secret moto does not have.
	t.Setenv("WXPAY_SECRET_ID", "prod/wxpay/missing")
	s, err = FromEnv(ctx, offlineClient, discard())
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Client(ctx)
	if ce, ok := err.(*ConfigError); !ok || ce.Field != "secret" || ce.Temporary() {
		t.Fatalf("missing secret: %v", err)
	}
}
