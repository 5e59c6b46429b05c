package handler

import (
	"encoding/base64"
	"errors"

	"github.com/go-json-experiment/json"
)

// Source names an event source, as logged.
type Source string

// The event sources a function accepts.
const (
	SourceREST   Source = "apigw-rest"
	SourceHTTP   Source = "apigw-http"
	SourceSQS    Source = "sqs"
	SourceDirect Source = "direct"
)

// envelope holds the fields that tell event shapes apart, and those the
// functions read. Everything else in an event is ignored.
type envelope struct {
	Version        string `json:"version"`
	HTTPMethod     string `json:"httpMethod"`
	RequestContext *struct {
		RequestID string `json:"requestId"`
		HTTP      *struct {
			Method string `json:"method"`
		} `json:"http"`
		// The caller's IAM identity: REST APIs' identity, HTTP APIs'
		// IAM authorizer.
		Identity *struct {
			UserArn string `json:"userArn"`
		} `json:"identity"`
		Authorizer *struct {
			IAM *struct {
				UserArn string `json:"userArn"`
			} `json:"iam"`
		} `json:"authorizer"`
	} `json:"requestContext"`
	Body                  *string           `json:"body"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
	PathParameters        map[string]string `json:"pathParameters"`
	QueryStringParameters map[string]string `json:"queryStringParameters"`
	Records               []sqsRecord       `json:"Records"`
}

// sqsRecord is the part of an SQS record the functions read.
type sqsRecord struct {
	MessageID   string `json:"messageId"`
	Body        string `json:"body"`
	EventSource string `json:"eventSource"`
}

// httpRequest is an API Gateway request reduced to what the functions use.
type httpRequest struct {
	method string
	body   []byte
	path   map[string]string
	query  map[string]string
	caller string // the caller's IAM identity (ARN), as the ledger records it
}

// classify decodes the event's envelope and says which source sent it.
// Member names match exactly, as Lambda writes them; members the envelope
// does not name are skipped.
func classify(payload []byte) (Source, *envelope) {
	env := &envelope{}
	if err := json.Unmarshal(payload, env); err != nil {
		// Not an envelope: a direct invoke, whose decoding says why.
		return SourceDirect, nil
	}
	return sourceOf(env), env
}

// sourceOf tells the event source by the envelope's shape.
func sourceOf(env *envelope) Source {
	switch {
	case len(env.Records) > 0 && env.Records[0].EventSource == "aws:sqs":
		return SourceSQS
	case env.RequestContext != nil && env.RequestContext.HTTP != nil && env.Version == "2.0":
		return SourceHTTP
	case env.RequestContext != nil && env.HTTPMethod != "":
		return SourceREST
	}
	return SourceDirect
}

// errBadBase64 is an API Gateway body flagged base64 that does not decode.
var errBadBase64 = errors.New("body is not valid base64")

// request returns the HTTP request an API Gateway envelope carries.
func (e *envelope) request(src Source) (httpRequest, error) {
	r := httpRequest{path: e.PathParameters, query: e.QueryStringParameters}
	rc := e.RequestContext
	if src == SourceHTTP {
		r.method = rc.HTTP.Method
		if rc.Authorizer != nil && rc.Authorizer.IAM != nil {
			r.caller = rc.Authorizer.IAM.UserArn
		}
	} else {
		r.method = e.HTTPMethod
		if rc.Identity != nil {
			r.caller = rc.Identity.UserArn
		}
	}
	if e.Body == nil {
		return r, nil
	}
	if len(*e.Body) > maxBodySize*4/3+4 {
		return r, errTooLarge
	}
	if e.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(*e.Body)
		if err != nil {
			return r, errBadBase64
		}
		r.body = b
	} else {
		r.body = []byte(*e.Body)
	}
	return r, nil
}
