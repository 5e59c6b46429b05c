package mototest_test

import (
	"net/http"
	"os"
	"testing"

	"github.com/redpacket-lambda/wxredpack/internal/mototest"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// TestStartShared: under Main, every Start answers the same running server.
func TestStartShared(t *testing.T) {
	url := mototest.Start(t)
	if again := mototest.Start(t); again != url {
		t.Fatalf("second Start = %s, want the shared %s", again, url)
	}
	resp, err := http.Get(url + "/moto-api/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /moto-api/: %s", resp.Status)
	}
}
