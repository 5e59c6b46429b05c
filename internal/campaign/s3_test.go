package campaign_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/redpacket-lambda/wxredpack/internal/campaign"
	"github.com/redpacket-lambda/wxredpack/internal/mototest"
)

var buckets atomic.Int64

// newBucket creates a bucket of its own for t on moto_server and returns
// a client of it and the bucket's name.
func newBucket(t *testing.T) (*s3.Client, string) {
	t.Helper()
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(mototest.Start(t)),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		UsePathStyle: true, // moto_server has no per-bucket host names
	})
	name := fmt.Sprintf("campaign-test-%d", buckets.Add(1))
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return client, name
}

// readAll reads and closes r.
func readAll(t *testing.T, r io.ReadCloser) string {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// TestS3Object checks that Open reads the object and its ETag, and with
// an ETag only that version.
func TestS3Object(t *testing.T) {
	ctx := context.Background()
	client, bucket := newBucket(t)
	sink := campaign.Bucket{Client: client, Name: bucket}
	const v1, v2 = "openid,amount\no1,100\n", "openid,amount\no1,200\n"
	if err := sink.Put(ctx, "in/c.csv", "text/csv", []byte(v1)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	obj := campaign.S3Object{Client: client, Bucket: bucket, Key: "in/c.csv"}

	r, etag1, err := obj.Open(ctx, "")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := readAll(t, r); got != v1 || etag1 == "" {
		t.Fatalf("Open: %q at ETag %q, want %q at an ETag", got, etag1, v1)
	}
	r, etag, err := obj.Open(ctx, etag1)
	if err != nil {
		t.Fatalf("Open at %s: %v", etag1, err)
	}
	if got := readAll(t, r); got != v1 || etag != etag1 {
		t.Fatalf("Open at %s: %q at ETag %q, want %q", etag1, got, etag, v1)
	}

	// The object replaced: the checked version is not read.
	if err := sink.Put(ctx, "in/c.csv", "text/csv", []byte(v2)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if r, _, err := obj.Open(ctx, etag1); !errors.Is(err, campaign.ErrChanged) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("Open at the stale ETag: %v, want ErrChanged", err)
	}
	r, etag2, err := obj.Open(ctx, "")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := readAll(t, r); got != v2 || etag2 == etag1 {
		t.Fatalf("Open: %q at ETag %q, want %q at another ETag than %q", got, etag2, v2, etag1)
	}

	// An object that is gone is not the version checked; with no ETag it
	// is just absent.
	gone := campaign.S3Object{Client: client, Bucket: bucket, Key: "in/gone.csv"}
	if _, _, err := gone.Open(ctx, etag1); !errors.Is(err, campaign.ErrChanged) {
		t.Errorf("Open of a missing object at an ETag: %v, want ErrChanged", err)
	}
	if _, _, err := gone.Open(ctx, ""); err == nil || errors.Is(err, campaign.ErrChanged) {
		t.Errorf("Open of a missing object: %v, want an error other than ErrChanged", err)
	}
}

// TestBucketPut checks that Put writes Prefix+name with its content type,
// replacing what was there.
func TestBucketPut(t *testing.T) {
	ctx := context.Background()
	client, bucket := newBucket(t)
	sink := campaign.Bucket{Client: client, Name: bucket, Prefix: "reports/c1/"}
	for _, body := range []string{"first", "row,outcome\n1,SENT\n", ""} {
		if err := sink.Put(ctx, "report.csv", "text/csv; charset=utf-8", []byte(body)); err != nil {
			t.Fatalf("Put: %v", err)
		}
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("reports/c1/report.csv")})
		if err != nil {
			t.Fatalf("GetObject: %v", err)
		}
		if got := readAll(t, out.Body); got != body || aws.ToString(out.ContentType) != "text/csv; charset=utf-8" {
			t.Fatalf("stored %q as %q, want %q as text/csv; charset=utf-8", got, aws.ToString(out.ContentType), body)
		}
	}
	missing := campaign.Bucket{Client: client, Name: bucket + "-missing"}
	if err := missing.Put(ctx, "report.csv", "text/csv", []byte("x")); err == nil {
		t.Fatal("Put to a missing bucket: nil error")
	}
}

// TestParseS3URL checks the URLs ParseS3URL takes and refuses.
func TestParseS3URL(t *testing.T) {
	tests := []struct {
		in          string
		bucket, key string
		ok          bool
	}{
		{"s3://bucket/key.csv", "bucket", "key.csv", true},
		{"s3://my.bucket/dir/sub/file.jsonl", "my.bucket", "dir/sub/file.jsonl", true},
		{"s3://bucket/dir/", "bucket", "dir/", true},
		{"s3://bucket", "", "", false},
		{"s3://bucket/", "", "", false},
		{"s3:///key", "", "", false},
		{"s3://", "", "", false},
		{"S3://bucket/key", "", "", false},
		{"https://bucket.s3.amazonaws.com/key", "", "", false},
		{"/local/file.csv", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			bucket, key, err := campaign.ParseS3URL(tt.in)
			if (err == nil) != tt.ok || bucket != tt.bucket || key != tt.key {
				t.Fatalf("ParseS3URL(%q) = %q, %q, %v; want %q, %q, ok %v", tt.in, bucket, key, err, tt.bucket, tt.key, tt.ok)
			}
		})
	}
}

// TestDirPut checks that Put creates the folder, writes and replaces the
// file whole, leaves no temporary file, and writes only inside the
// folder.
func TestDirPut(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := campaign.Dir(filepath.Join(root, "reports"))
	for _, body := range []string{"first version, longer than the second", "second", ""} {
		if err := dir.Put(ctx, "c1/report.csv", "text/csv", []byte(body)); err != nil {
			t.Fatalf("Put: %v", err)
		}
		path := filepath.Join(string(dir), "c1", "report.csv")
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		if string(got) != body {
			t.Fatalf("read back %q, want %q", got, body)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o644 {
			t.Errorf("mode %v, want 0644", perm)
		}
	}
	entries, err := os.ReadDir(filepath.Join(string(dir), "c1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "report.csv" {
		t.Errorf("folder holds %v, want only report.csv", entries)
	}

	for _, name := range []string{"../escape.csv", "/etc/report.csv", "", "c1/../../escape.csv"} {
		if err := dir.Put(ctx, name, "text/csv", []byte("x")); err == nil {
			t.Errorf("Put %q: nil error", name)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "escape.csv")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file was written outside the folder: %v", err)
	}
}

// TestLocalFile checks that Open reads the file with its SHA-256 as etag,
// and with an etag only that content, also when the file changes while
// it is read.
func TestLocalFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.csv")
	const v1, v2 = "openid,amount\no1,100\n", "openid,amount\no1,200\n"
	if err := os.WriteFile(path, []byte(v1), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(v1))
	want1 := hex.EncodeToString(sum[:])
	f := campaign.LocalFile{Path: path}

	r, etag1, err := f.Open(ctx, "")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := readAll(t, r); got != v1 || etag1 != want1 {
		t.Fatalf("Open: %q at %q, want %q at %q", got, etag1, v1, want1)
	}
	r, etag, err := f.Open(ctx, etag1)
	if err != nil {
		t.Fatalf("Open at %s: %v", etag1, err)
	}
	if got := readAll(t, r); got != v1 || etag != etag1 {
		t.Fatalf("Open at %s: %q at %q", etag1, got, etag)
	}

	// Changed between Open and the end of the read: the read fails.
	r, _, err = f.Open(ctx, etag1)
	if err != nil {
		t.Fatalf("Open at %s: %v", etag1, err)
	}
	if err := os.WriteFile(path, []byte(v2), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, campaign.ErrChanged) {
		t.Fatalf("read of a file changed after Open: %v, want ErrChanged", err)
	}
	r.Close()

	// Changed before Open.
	if _, _, err := f.Open(ctx, etag1); !errors.Is(err, campaign.ErrChanged) {
		t.Fatalf("Open at the stale etag: %v, want ErrChanged", err)
	}
	r, etag2, err := f.Open(ctx, "")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := readAll(t, r); got != v2 || etag2 == etag1 {
		t.Fatalf("Open: %q at %q, want %q at another etag", got, etag2, v2)
	}

	missing := campaign.LocalFile{Path: filepath.Join(t.TempDir(), "missing.csv")}
	if _, _, err := missing.Open(ctx, ""); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestSourcesAndSinks checks that a report written to a sink reads back
// from the matching source, as a local run writes and reads them.
func TestSourcesAndSinks(t *testing.T) {
	ctx := context.Background()
	client, bucket := newBucket(t)
	dir := t.TempDir()
	body := []byte("row,outcome\n1,SENT\n")
	tests := []struct {
		name   string
		sink   campaign.Sink
		source campaign.Source
	}{
		{"S3", campaign.Bucket{Client: client, Name: bucket, Prefix: "p/"}, campaign.S3Object{Client: client, Bucket: bucket, Key: "p/r.csv"}},
		{"local", campaign.Dir(dir), campaign.LocalFile{Path: filepath.Join(dir, "r.csv")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.sink.Put(ctx, "r.csv", "text/csv", body); err != nil {
				t.Fatalf("Put: %v", err)
			}
			r, etag, err := tt.source.Open(ctx, "")
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := readAll(t, r); !bytes.Equal([]byte(got), body) || etag == "" {
				t.Fatalf("Open: %q at %q, want %q", got, etag, body)
			}
		})
	}
}
