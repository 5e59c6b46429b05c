package campaign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ErrChanged: the campaign file is not the version that was checked (its
// ETag differs, or it is gone). Planning must not record rows that were
// never checked.
var ErrChanged = errors.New("campaign: the file changed since it was checked")

// Source is a campaign's file. It is read twice: once to check it, with
// no etag, which gives the version read; then to plan it, with that
// etag, so that planning reads exactly the rows that were checked.
type Source interface {
	// Open returns the file's content and its version (an opaque etag).
	// With etag != "", only that version is read: another one is an error
	// wrapping ErrChanged.
	Open(ctx context.Context, etag string) (io.ReadCloser, string, error)
}

// Sink is where a campaign's reports are written.
type Sink interface {
	// Put writes body as name, replacing what name held.
	Put(ctx context.Context, name, contentType string, body []byte) error
}

// S3API is the part of *s3.Client that S3Object and Bucket use.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// S3Object is a campaign file in S3: a Source whose etag is the object's
// ETag, as S3 gives it (quoted).
type S3Object struct {
	Client      S3API
	Bucket, Key string
}

// Open implements Source with one GetObject, conditional on the ETag
// (If-Match) when etag != "": S3 then serves that version or nothing, so
// the check of the version and the read of it are one step.
func (o S3Object) Open(ctx context.Context, etag string) (io.ReadCloser, string, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Key)}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	}
	out, err := o.Client.GetObject(ctx, in)
	if err != nil {
		if etag != "" && s3Status(err, http.StatusPreconditionFailed, http.StatusNotFound) {
			return nil, "", fmt.Errorf("campaign: open s3://%s/%s at ETag %s: %w: %w", o.Bucket, o.Key, etag, ErrChanged, err)
		}
		return nil, "", fmt.Errorf("campaign: open s3://%s/%s: %w", o.Bucket, o.Key, err)
	}
	return out.Body, aws.ToString(out.ETag), nil
}

// s3Status reports whether err is an S3 answer with one of the statuses.
func s3Status(err error, statuses ...int) bool {
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	for _, s := range statuses {
		if re.HTTPStatusCode() == s {
			return true
		}
	}
	return false
}

// Bucket is a Sink in S3: Put writes the object Prefix+name in bucket
// Name.
type Bucket struct {
	Client S3API
	Name   string
	// Prefix is prepended to every name as is: end it with "/" for a
	// folder.
	Prefix string
}

// Put implements Sink with one PutObject.
func (b Bucket) Put(ctx context.Context, name, contentType string, body []byte) error {
	key := b.Prefix + name
	_, err := b.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(b.Name),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("campaign: put s3://%s/%s: %w", b.Name, key, err)
	}
	return nil
}

// ParseS3URL splits "s3://bucket/key" into its bucket and key, neither
// empty. The key is everything after the bucket's slash, as is.
func ParseS3URL(s string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("campaign: %q is not an s3://bucket/key URL", s)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" || key == "" {
		return "", "", fmt.Errorf("campaign: %q is not an s3://bucket/key URL: no bucket or no key", s)
	}
	return bucket, key, nil
}

// Dir is a Sink in a local folder, for local runs: Put writes the file
// name in it (the content type is not kept).
type Dir string

// Put implements Sink. It creates the folder, and replaces the file
// atomically (a temporary file renamed over it), so that a reader sees
// the old report or the new one, never part of one. name must be a local
// path (filepath.IsLocal): a report never lands outside the folder.
func (d Dir) Put(ctx context.Context, name, contentType string, body []byte) error {
	if !filepath.IsLocal(name) {
		return fmt.Errorf("campaign: put %q in %s: not a path inside the folder", name, string(d))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("campaign: put %s in %s: %w", name, string(d), err)
	}
	path := filepath.Join(string(d), name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("campaign: put %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("campaign: put %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(body); err != nil {
		return fmt.Errorf("campaign: put %s: %w", path, err)
	}
	// Synced before the rename: after a crash the name holds a whole
	// report, not an empty file.
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("campaign: put %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp makes 0600
		return fmt.Errorf("campaign: put %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("campaign: put %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("campaign: put %s: %w", path, err)
	}
	done = true
	return nil
}

// LocalFile is a campaign file on this machine, for local runs: a Source
// whose etag is the hex SHA-256 of the content.
type LocalFile struct {
	Path string
}

// Open implements Source. It hashes the file before returning it, so that
// an etag that does not match fails at once with ErrChanged; and hashes
// it again as it is read, so that a file changed between the two reads
// fails the last Read with ErrChanged rather than passing rows that were
// never checked.
func (f LocalFile) Open(ctx context.Context, etag string) (io.ReadCloser, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("campaign: open %s: %w", f.Path, err)
	}
	file, err := os.Open(f.Path)
	if err != nil {
		return nil, "", fmt.Errorf("campaign: open %s: %w", f.Path, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		file.Close()
		return nil, "", fmt.Errorf("campaign: open %s: %w", f.Path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if etag != "" && sum != etag {
		file.Close()
		return nil, "", fmt.Errorf("campaign: open %s: sha256 %s, checked %s: %w", f.Path, sum, etag, ErrChanged)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		file.Close()
		return nil, "", fmt.Errorf("campaign: open %s: %w", f.Path, err)
	}
	return &hashedFile{file: file, h: sha256.New(), want: sum}, sum, nil
}

// hashedFile is a LocalFile being read: at the end, the content read
// must have the hash the file had when opened.
type hashedFile struct {
	file *os.File
	h    hash.Hash
	want string
}

// Read reads from the file; at its end it returns ErrChanged instead of
// io.EOF if the content read is not the content hashed at Open.
func (r *hashedFile) Read(p []byte) (int, error) {
	n, err := r.file.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(r.h.Sum(nil)); got != r.want {
			return n, fmt.Errorf("campaign: read %s: sha256 %s, opened at %s: %w", r.file.Name(), got, r.want, ErrChanged)
		}
	}
	return n, err
}

// Close closes the file.
func (r *hashedFile) Close() error { return r.file.Close() }

// The sources and sinks.
var (
	_ Source = S3Object{}
	_ Source = LocalFile{}
	_ Sink   = Bucket{}
	_ Sink   = Dir("")
)
