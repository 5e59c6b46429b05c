package smtest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

func client(s *Server) *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL()),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", Source: "test"}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func newServer(t *testing.T) (*Server, *secretsmanager.Client) {
	t.Helper()
	s := NewServer()
	t.Cleanup(s.Close)
	return s, client(s)
}

func TestGetSecretValueByNameAndARN(t *testing.T) {
	s, c := newServer(t)
	ctx := context.Background()
	s.Put("prod/wxpay", `{"mch_id":"1"}`)
	arn := s.ARN("prod/wxpay")
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/wxpay-") || len(arn) != len("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/wxpay-")+6 {
		t.Fatalf("ARN = %q", arn)
	}
	for _, id := range []string{"prod/wxpay", arn, strings.TrimSuffix(arn, arn[len(arn)-7:]), "arn:aws:secretsmanager:eu-west-1:999999999999:secret:prod/wxpay"} {
		out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatalf("GetSecretValue(%s): %v", id, err)
		}
		if aws.ToString(out.SecretString) != `{"mch_id":"1"}` || aws.ToString(out.ARN) != arn || aws.ToString(out.Name) != "prod/wxpay" ||
			aws.ToString(out.VersionId) == "" || len(out.VersionStages) != 1 || out.VersionStages[0] != "AWSCURRENT" ||
			out.CreatedDate == nil || time.Since(*out.CreatedDate) > time.Minute {
			t.Errorf("GetSecretValue(%s) = %+v", id, out)
		}
	}
	if s.Calls() != 4 {
		t.Errorf("Calls() = %d, want 4", s.Calls())
	}
}

func TestPutWithARN(t *testing.T) {
	s, c := newServer(t)
	arn := "arn:aws:secretsmanager:ap-east-1:111122223333:secret:wxpay-AbCdEf"
	s.Put(arn, "v1")
	for _, id := range []string{arn, "wxpay"} {
		out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil || aws.ToString(out.SecretString) != "v1" || aws.ToString(out.ARN) != arn {
			t.Errorf("GetSecretValue(%s) = %v, %v", id, out, err)
		}
	}
}

func TestMissingSecret(t *testing.T) {
	_, c := newServer(t)
	_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want ResourceNotFoundException", err)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 400 {
		t.Errorf("status: %v", err)
	}
}

func TestCreatePutDescribeDelete(t *testing.T) {
	s, c := newServer(t)
	ctx := context.Background()
	created, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("wxpay"), SecretString: aws.String("v1")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(created.Name) != "wxpay" || aws.ToString(created.ARN) != s.ARN("wxpay") || created.VersionId == nil {
		t.Errorf("CreateSecret = %+v", created)
	}
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("wxpay"), SecretString: aws.String("v1")}); !errors.As(err, new(*types.ResourceExistsException)) {
		t.Errorf("second CreateSecret: %v", err)
	}
	put, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: created.ARN, SecretString: aws.String("v2")})
	if err != nil || aws.ToString(put.VersionId) == aws.ToString(created.VersionId) {
		t.Fatalf("PutSecretValue = %+v, %v", put, err)
	}
	if v, _ := s.Lookup("wxpay"); v != "v2" {
		t.Errorf("current = %q", v)
	}
	prev, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("wxpay"), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(prev.SecretString) != "v1" {
		t.Errorf("AWSPREVIOUS = %v, %v", prev, err)
	}
	byID, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("wxpay"), VersionId: created.VersionId})
	if err != nil || aws.ToString(byID.SecretString) != "v1" {
		t.Errorf("by VersionId = %v, %v", byID, err)
	}
	desc, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("wxpay")})
	if err != nil || aws.ToString(desc.ARN) != s.ARN("wxpay") || len(desc.VersionIdsToStages) != 2 ||
		desc.VersionIdsToStages[aws.ToString(put.VersionId)][0] != "AWSCURRENT" {
		t.Errorf("DescribeSecret = %+v, %v", desc, err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("wxpay"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup("wxpay"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if s.Calls() != 2 {
		t.Errorf("Calls() = %d, want 2: only GetSecretValue counts", s.Calls())
	}
	ops := []string{}
	for _, r := range s.Requests() {
		ops = append(ops, r.Op)
	}
	if got := strings.Join(ops, ","); got != "CreateSecret,CreateSecret,PutSecretValue,GetSecretValue,GetSecretValue,DescribeSecret,DeleteSecret" {
		t.Errorf("ops = %s", got)
	}
}

func TestFail(t *testing.T) {
	tests := []struct {
		code   string
		status int
		typed  any
	}{
		{"ResourceNotFoundException", 400, new(*types.ResourceNotFoundException)},
		{"AccessDeniedException", 400, nil},
		{"ThrottlingException", 400, nil},
		{"DecryptionFailure", 400, new(*types.DecryptionFailure)},
		{"InternalServiceError", 500, new(*types.InternalServiceError)},
		{"ServiceUnavailable", 503, nil},
	}
	s, c := newServer(t)
	s.Put("wxpay", "v")
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			s.Fail(1, tt.code)
			_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("wxpay")})
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tt.code || ae.ErrorMessage() == "" {
				t.Fatalf("err = %v, want API error %s", err, tt.code)
			}
			var re *awshttp.ResponseError
			if !errors.As(err, &re) || re.HTTPStatusCode() != tt.status {
				t.Errorf("status: %v, want %d", err, tt.status)
			}
			if tt.typed != nil && !errors.As(err, tt.typed) {
				t.Errorf("err %T is not the SDK's modelled type", err)
			}
			if _, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("wxpay")}); err != nil {
				t.Errorf("the fault lasted: %v", err)
			}
		})
	}
	// Faults queue up and touch only GetSecretValue.
	s.Fail(2, "ThrottlingException")
	if _, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("wxpay")}); err != nil {
		t.Errorf("DescribeSecret failed: %v", err)
	}
	for i := range 3 {
		_, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("wxpay")})
		if (err != nil) != (i < 2) {
			t.Errorf("call %d: %v", i, err)
		}
	}
}

func TestSetDownAndDelay(t *testing.T) {
	s, c := newServer(t)
	s.Put("wxpay", "v")
	s.SetDown(true)
	if _, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("wxpay")}); err == nil {
		t.Fatal("no error while down")
	} else if errors.As(err, new(smithy.APIError)) {
		t.Errorf("down answered an API error: %v", err)
	}
	s.SetDown(false)
	s.SetDelay(100 * time.Millisecond)
	start := time.Now()
	if _, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("wxpay")}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("answered in %v, before the delay", d)
	}
}

func TestRefusesUnsignedAndUnknown(t *testing.T) {
	s, _ := newServer(t)
	post := func(target, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/", strings.NewReader(`{"SecretId":"x"}`))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", target)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if st, body := post("secretsmanager.GetSecretValue", ""); st != 400 || !strings.Contains(body, `"__type":"MissingAuthenticationTokenException"`) {
		t.Errorf("unsigned: %d %s", st, body)
	}
	if st, body := post("secretsmanager.RotateSecret", "AWS4-HMAC-SHA256 Credential=x"); st != 400 || !strings.Contains(body, "UnknownOperationException") {
		t.Errorf("unknown op: %d %s", st, body)
	}
}

func TestStartFixedAddr(t *testing.T) {
	s := NewServer()
	addr := strings.TrimPrefix(s.URL(), "http://")
	s.Close()
	s2, err := Start(addr)
	if err != nil {
		t.Fatalf("Start(%s): %v", addr, err)
	}
	defer s2.Close()
	if s2.URL() != "http://"+addr {
		t.Errorf("URL = %s", s2.URL())
	}
	if _, err := Start(addr); err == nil {
		t.Error("a second Start on a busy address succeeded")
	}
}
