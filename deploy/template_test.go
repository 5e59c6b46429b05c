package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"gopkg.in/yaml.v3"

	"github.com/redpacket-lambda/wxredpack/internal/ledger"
)

// contractFunction is one function of the project's external contract.
type contractFunction struct {
	ID     string   // SAM logical id
	Dir    string   // functions/<Dir>
	Routes []string // API routes, "METHOD /path"; none for the scheduled functions
	Queue  bool     // fed by an SQS queue of its own
	Ledger []string // the item actions it makes on the ledger table, exactly
	// Indexes are the actions it makes on the ledger's indexes, by index
	// name (ledger.DueIndex, ledger.CampaignIndex), exactly. A function
	// with any has its item actions on the table alone; the others on the
	// table and its indexes.
	Indexes map[string][]string
	// Campaign are the item actions it makes on CampaignTable, exactly.
	Campaign []string
	// Bucket: it reads incoming/ (s3:GetObject) and writes reports/
	// (s3:PutObject) of CampaignBucket, and nothing else of it.
	Bucket bool
	// ListIncoming: it may also list incoming/ (s3:ListBucket on the
	// bucket itself, under Condition StringLike s3:prefix incoming/*), so
	// that S3 answers its GetObject of a key not there yet with 404
	// NoSuchKey, not 403 AccessDenied.
	ListIncoming bool
	// Schedule: it runs on an EventBridge schedule (and no other event
	// source but its routes).
	Schedule bool
	// Env are the variables it has beyond the Globals' (campaignEnv),
	// exactly among campaignEnv's.
	Env []string
	// Timeout in seconds when it is not behind the API (which needs less
	// than apiGatewayTimeout); MemorySize when not the Globals'.
	Timeout, MemorySize float64
}

// contract is the function table of the project's external contract.
var contract = []contractFunction{
	{ID: "SendGroupFunction", Dir: "sendgroup", Routes: []string{"POST /redpacks/group"}, Queue: true, Ledger: sendLedgerActions, Campaign: sendCampaignActions, Env: sendEnv},
	{ID: "SendMiniFunction", Dir: "sendmini", Routes: []string{"POST /redpacks/mini"}, Queue: true, Ledger: sendLedgerActions, Campaign: sendCampaignActions, Env: sendEnv},
	{ID: "SendFunction", Dir: "send", Routes: []string{"POST /redpacks"}, Queue: true, Ledger: sendLedgerActions, Campaign: sendCampaignActions, Env: sendEnv},
	{ID: "QueryFunction", Dir: "query", Routes: []string{"GET /redpacks/{mch_billno}"}, Ledger: []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}},
	{ID: reconcilerID, Dir: "reconcile", Schedule: true, Ledger: reconcileLedgerActions,
		Indexes:  map[string][]string{ledger.DueIndex: {"dynamodb:Query"}},
		Campaign: []string{"dynamodb:GetItem", "dynamodb:PutItem"}, Env: []string{"WXPAY_CAMPAIGN_TABLE"}, Timeout: reconcilerTimeout},
	{ID: campaignsID, Dir: "campaigns", Routes: campaignRoutes, Ledger: []string{"dynamodb:GetItem"},
		Indexes:  map[string][]string{campaignIndex: {"dynamodb:Query"}},
		Campaign: []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"}, Bucket: true, ListIncoming: true, Env: campaignFunctionEnv, MemorySize: 256},
	{ID: campaignRunID, Dir: "campaignrun", Schedule: true, Ledger: sendLedgerActions,
		Indexes:  map[string][]string{campaignIndex: {"dynamodb:Query"}},
		Campaign: []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Scan"}, Bucket: true, Env: campaignFunctionEnv,
		Timeout: campaignRunTimeout, MemorySize: 256},
}

// The campaigns' functions, their routes and their table, bucket and
// parameters.
const (
	campaignsID        = "CampaignsFunction"
	campaignRunID      = "CampaignRunFunction"
	campaignTableID    = "CampaignTable"
	campaignBucketID   = "CampaignBucket"
	campaignRunTimeout = 900
	// The S3 event: every object created under incoming/.
	campaignPrefix  = "incoming/"
	reportsPrefix   = "reports/"
	campaignS3Event = "s3:ObjectCreated:*"
	// campaignIndex is the ledger's index of a campaign's rows
	// (ledger.CampaignIndex).
	campaignIndex = "campaign"
)

var campaignRoutes = []string{
	"POST /campaigns",
	"GET /campaigns/{id}",
	"POST /campaigns/{id}/pause",
	"POST /campaigns/{id}/resume",
	"POST /campaigns/{id}/cancel",
}

// sendCampaignActions: each send is counted in the merchant's per-second
// window, the pacing item pace#<mch_id> of CampaignTable: one UpdateItem.
var sendCampaignActions = []string{"dynamodb:UpdateItem"}

// campaignEnv are the campaigns' variables and what each must be: the
// table, the bucket (!Ref CampaignBucket, or for the function the bucket
// notifies, the bucket's own derived BucketName) and the two rate
// parameters.
var campaignEnv = map[string]string{
	"WXPAY_CAMPAIGN_TABLE":  campaignTableID,
	"WXPAY_CAMPAIGN_BUCKET": campaignBucketID,
	"WXPAY_RATE_LIMIT":      "WxpayRateLimit",
	"WXPAY_API_RESERVE":     "WxpayApiReserve",
}

var (
	// The send functions count each send in the shared window.
	sendEnv = []string{"WXPAY_CAMPAIGN_TABLE", "WXPAY_RATE_LIMIT"}
	// The campaign functions have them all.
	campaignFunctionEnv = []string{"WXPAY_CAMPAIGN_TABLE", "WXPAY_CAMPAIGN_BUCKET", "WXPAY_RATE_LIMIT", "WXPAY_API_RESERVE"}
)

// sendLedgerActions: a strongly consistent GetItem, the conditional
// PutItem that records a billno and the conditional UpdateItems that take
// its lease and settle its outcome.
var sendLedgerActions = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}

// reconcileLedgerActions: the reconciler reads an item (GetItem) and moves
// it (conditional UpdateItem); its re-send of a stored request goes
// through the send path on an item that exists (GetItem, then UpdateItems
// for the lease and the outcome), never PutItem. Due is a Query of the
// index due (contractFunction.DueIndex).
var reconcileLedgerActions = []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}

// reconcilerID is the reconciler's logical id.
const reconcilerID = "ReconcileFunction"

// The ledger table's key (internal/ledger: HashKey, RangeKey).
const (
	ledgerHashKey  = ledger.HashKey
	ledgerRangeKey = ledger.RangeKey
)

// apiGatewayTimeout is API Gateway's default integration timeout, in seconds.
const apiGatewayTimeout = 29

// reconcilerTimeout is the reconciler's timeout, in seconds: a pass has
// the interval of the default schedule (rate(1 minute)).
const reconcilerTimeout = 60

// input is what the checks look at: the parsed template, the Makefile text
// and the parsed env/local.json.
type input struct {
	tpl      map[string]any
	makefile string
	localEnv map[string]any
}

type check struct {
	name string
	fn   func(*input) error
}

var checks = []check{
	{"functions and build", checkFunctions},
	{"api is IAM-only", checkAPI},
	{"routes match contract", checkRoutes},
	{"least-privilege roles", checkRoles},
	{"queues and dead-letter queue", checkQueues},
	{"runtime configuration", checkRuntimeConfig},
	{"outputs", checkOutputs},
	{"ledger table", checkLedgerTable},
	{"reconciler", checkReconciler},
	{"alarms", checkAlarms},
	{"campaigns", checkCampaigns},
	{"dashboard", checkDashboard},
	{"env/local.json", checkLocalEnv},
	{"egress modes", checkEgress},
	{"architecture", checkArchitecture},
	{"partition", checkPartition},
}

func TestTemplate(t *testing.T) {
	in := load(t)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.fn(in); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestFunctionDirsExist: every function in the template has its package.
func TestFunctionDirsExist(t *testing.T) {
	for _, f := range contract {
		dir := filepath.Join("..", "functions", f.Dir)
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() {
			t.Errorf("functions/%s does not exist (%s)", f.Dir, f.ID)
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if len(matches) == 0 {
			t.Errorf("functions/%s has no Go files", f.Dir)
		}
	}
}

// TestChecksCatchBreakage proves each check can fail: every case breaks a
// fresh copy of the real files in one way and expects the named check to
// reject it.
func TestChecksCatchBreakage(t *testing.T) {
	cases := []struct {
		check  string
		name   string
		mutate func(t *testing.T, in *input)
	}{
		// functions and build
		{"functions and build", "makefile target builds another package", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "./functions/sendmini", "./functions/send", 1)
		}},
		{"functions and build", "makefile target missing", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "build-QueryFunction:", "build-Query:", 1)
		}},
		{"architecture", "makefile builds amd64 by default", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "GOARCH_arm64 = arm64", "GOARCH_arm64 = amd64", 1)
		}},
		{"architecture", "makefile builds x86_64 for arm64", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "GOARCH_x86_64 = amd64", "GOARCH_x86_64 = arm64", 1)
		}},
		{"architecture", "makefile defaults to x86_64", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "ARCH ?= arm64", "ARCH ?= x86_64", 1)
		}},
		{"architecture", "makefile ignores ARCH", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "GOARCH=$(GOARCH)", "GOARCH=arm64", 1)
		}},
		{"architecture", "parameter defaults to x86_64", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Parameters"), "Architecture")["Default"] = "x86_64"
		}},
		{"architecture", "architecture hard-coded", func(t *testing.T, in *input) {
			globalsFn(in)["Architectures"] = []any{"arm64"}
		}},
		{"functions and build", "architecture hard-coded", func(t *testing.T, in *input) {
			globalsFn(in)["Architectures"] = []any{"arm64"}
		}},

		// egress modes
		{"egress modes", "VpcConfig in every mode", func(t *testing.T, in *input) {
			ifv, _ := fnIf(globalsFn(in)["VpcConfig"])
			globalsFn(in)["VpcConfig"] = ifv[1]
		}},
		{"egress modes", "no VpcConfig", func(t *testing.T, in *input) {
			delete(globalsFn(in), "VpcConfig")
		}},
		{"egress modes", "one function outside the VPC", func(t *testing.T, in *input) {
			props(in, "QueryFunction")["VpcConfig"] = map[string]any{"Ref": "AWS::NoValue"}
		}},
		{"egress modes", "IPv6 allowed", func(t *testing.T, in *input) {
			ifv, _ := fnIf(globalsFn(in)["VpcConfig"])
			ifv[1].(map[string]any)["Ipv6AllowedForDualStack"] = true
		}},
		{"egress modes", "subnets mode on the stack's subnets", func(t *testing.T, in *input) {
			ifv, _ := fnIf(globalsFn(in)["VpcConfig"])
			ifv[1].(map[string]any)["SubnetIds"] = snippet(t, `[!Ref PrivateSubnetA, !Ref PrivateSubnetB]`)
		}},
		{"egress modes", "network interface permissions in every mode", func(t *testing.T, in *input) {
			pols := props(in, "SendRole")["Policies"].([]any)
			for i, p := range pols {
				if ifv, ok := fnIf(p); ok {
					pols[i] = ifv[1]
				}
			}
		}},
		{"egress modes", "a role without the network interface permissions", func(t *testing.T, in *input) {
			props(in, "QueryRole")["Policies"] = slices.DeleteFunc(props(in, "QueryRole")["Policies"].([]any), func(p any) bool {
				_, ok := fnIf(p)
				return ok
			})
		}},
		{"egress modes", "EgressIps in every mode", func(t *testing.T, in *input) {
			delete(getMap(getMap(in.tpl, "Outputs"), "EgressIps"), "Condition")
		}},
		{"egress modes", "EgressIps without the second address", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Outputs"), "EgressIps")["Value"] = snippet(t, `!GetAtt NatEipA.PublicIp`)
		}},
		{"egress modes", "second NAT gateway always", func(t *testing.T, in *input) {
			resource(in, "NatGatewayB")["Condition"] = "CreateVpc"
			resource(in, "NatEipB")["Condition"] = "CreateVpc"
		}},
		{"egress modes", "NAT gateway without an Elastic IP", func(t *testing.T, in *input) {
			props(in, "NatGatewayB")["AllocationId"] = snippet(t, `!GetAtt NatEipA.AllocationId`)
		}},
		{"egress modes", "zone B through zone A with two NAT gateways", func(t *testing.T, in *input) {
			props(in, "PrivateDefaultRouteB")["NatGatewayId"] = snippet(t, `!Ref NatGatewayA`)
		}},
		{"egress modes", "network built in subnets mode", func(t *testing.T, in *input) {
			resource(in, "InternetGateway")["Condition"] = "UseVpc"
		}},
		{"egress modes", "no DynamoDB gateway endpoint", func(t *testing.T, in *input) {
			delete(resources(in), "DynamoDbGatewayEndpoint")
		}},
		{"egress modes", "S3 endpoint on one route table", func(t *testing.T, in *input) {
			props(in, "S3GatewayEndpoint")["RouteTableIds"] = snippet(t, `[!Ref PrivateRouteTableA]`)
		}},
		{"egress modes", "Secrets Manager endpoint whatever the parameter", func(t *testing.T, in *input) {
			resource(in, "SecretsManagerInterfaceEndpoint")["Condition"] = "CreateVpc"
			resource(in, "SecretsManagerEndpointSecurityGroup")["Condition"] = "CreateVpc"
		}},
		{"egress modes", "functions may send anything anywhere", func(t *testing.T, in *input) {
			props(in, "FunctionSecurityGroup")["SecurityGroupEgress"] = snippet(t, `[{IpProtocol: '-1', CidrIp: 0.0.0.0/0}]`)
		}},
		{"egress modes", "default mode create", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Parameters"), "EgressMode")["Default"] = "create"
		}},
		{"egress modes", "subnets mode accepted without subnets", func(t *testing.T, in *input) {
			delete(in.tpl, "Rules")
		}},

		// partition
		{"partition", "hard-coded partition", func(t *testing.T, in *input) {
			statement(in, "SendRole", "ManageVpcNetworkInterfaces")["Resource"] = snippet(t,
				`[!Sub 'arn:aws:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*']`)
		}},
		{"partition", "hard-coded domain", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Outputs"), "ApiUrl")["Value"] = snippet(t,
				`!Sub 'https://${RedpackApi}.execute-api.${AWS::Region}.amazonaws.com/v1/'`)
		}},
		{"partition", "edge-optimized API", func(t *testing.T, in *input) {
			getMap(props(in, "RedpackApi"), "EndpointConfiguration")["Type"] = "EDGE"
		}},
		{"partition", "pseudo parameter outside Fn::Sub", func(t *testing.T, in *input) {
			statement(in, "QueryRole", "ReadWxpaySecret")["Resource"] = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:wxpay"
		}},
		{"functions and build", "makefile target without lambda.norpc", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "-tags lambda.norpc ", "", 1)
		}},
		{"functions and build", "wrong runtime in globals", func(t *testing.T, in *input) {
			globalsFn(in)["Runtime"] = "go1.x"
		}},
		{"functions and build", "function overrides architecture", func(t *testing.T, in *input) {
			props(in, "SendFunction")["Architectures"] = []any{"x86_64"}
		}},
		{"functions and build", "CodeUri is the package dir", func(t *testing.T, in *input) {
			props(in, "SendMiniFunction")["CodeUri"] = "functions/sendmini"
		}},
		{"functions and build", "BuildMethod not makefile", func(t *testing.T, in *input) {
			resource(in, "QueryFunction")["Metadata"] = map[string]any{"BuildMethod": "go1.x"}
		}},
		{"functions and build", "handler not bootstrap", func(t *testing.T, in *input) {
			props(in, "SendGroupFunction")["Handler"] = "main"
		}},
		{"functions and build", "function missing", func(t *testing.T, in *input) {
			delete(resources(in), "SendGroupFunction")
		}},
		{"functions and build", "extra function", func(t *testing.T, in *input) {
			resources(in)["RefundFunction"] = snippet(t, `
Type: AWS::Serverless::Function
Properties: {CodeUri: ., Handler: bootstrap}`)
		}},

		// api
		{"api is IAM-only", "default authorizer removed", func(t *testing.T, in *input) {
			delete(props(in, "RedpackApi"), "Auth")
		}},
		{"api is IAM-only", "event overrides auth to NONE", func(t *testing.T, in *input) {
			events(in, "SendMiniFunction")["Api"] = snippet(t, `
Type: Api
Properties:
  RestApiId: !Ref RedpackApi
  Path: /redpacks/mini
  Method: post
  Auth:
    Authorizer: NONE`)
		}},
		{"api is IAM-only", "event on the implicit API", func(t *testing.T, in *input) {
			delete(eventProps(in, "SendFunction", "Api"), "RestApiId")
		}},
		{"api is IAM-only", "HttpApi event", func(t *testing.T, in *input) {
			events(in, "QueryFunction")["Http"] = snippet(t, `
Type: HttpApi
Properties: {Path: /q, Method: get}`)
		}},
		{"api is IAM-only", "function URL", func(t *testing.T, in *input) {
			props(in, "SendFunction")["FunctionUrlConfig"] = map[string]any{"AuthType": "NONE"}
		}},
		{"api is IAM-only", "caller-credentials integration", func(t *testing.T, in *input) {
			delete(getMap(props(in, "RedpackApi"), "Auth"), "InvokeRole")
		}},
		{"api is IAM-only", "no throttling", func(t *testing.T, in *input) {
			delete(props(in, "RedpackApi"), "MethodSettings")
		}},
		{"api is IAM-only", "throttling above WeChat's rate", func(t *testing.T, in *input) {
			props(in, "RedpackApi")["MethodSettings"] = snippet(t, `
- {ResourcePath: '/*', HttpMethod: '*', ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200}`)
		}},

		// routes
		{"routes match contract", "wrong path", func(t *testing.T, in *input) {
			eventProps(in, "SendMiniFunction", "Api")["Path"] = "/redpacks/minis"
		}},
		{"routes match contract", "wrong method", func(t *testing.T, in *input) {
			eventProps(in, "SendFunction", "Api")["Method"] = "put"
		}},
		{"routes match contract", "route missing", func(t *testing.T, in *input) {
			delete(events(in, "QueryFunction"), "Api")
		}},
		{"routes match contract", "extra route", func(t *testing.T, in *input) {
			events(in, "QueryFunction")["List"] = snippet(t, `
Type: Api
Properties: {RestApiId: !Ref RedpackApi, Path: /redpacks, Method: get}`)
		}},

		// roles
		{"least-privilege roles", "wildcard secret resource", func(t *testing.T, in *input) {
			statement(in, "SendRole", "ReadWxpaySecret")["Resource"] = "*"
		}},
		{"least-privilege roles", "wildcard action", func(t *testing.T, in *input) {
			statement(in, "SendRole", "ReadWxpaySecret")["Action"] = "secretsmanager:*"
		}},
		{"least-privilege roles", "secret resource is another parameter", func(t *testing.T, in *input) {
			statement(in, "QueryRole", "ReadWxpaySecret")["Resource"] = map[string]any{"Ref": "KmsKeyArn"}
		}},
		{"least-privilege roles", "managed policy attached", func(t *testing.T, in *input) {
			props(in, "SendMiniRole")["ManagedPolicyArns"] = []any{"arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"}
		}},
		{"least-privilege roles", "kms statement unconditional", func(t *testing.T, in *input) {
			pol := policyStatements(in, "SendGroupRole", "read-wxpay-secret")
			for i, st := range pol {
				if m, ok := st.(map[string]any); ok && m["Fn::If"] != nil {
					pol[i] = m["Fn::If"].([]any)[1]
				}
			}
		}},
		{"least-privilege roles", "SAM-generated role via Policies", func(t *testing.T, in *input) {
			delete(props(in, "SendFunction"), "Role")
			props(in, "SendFunction")["Policies"] = []any{"AWSSecretsManagerGetSecretValuePolicy"}
		}},
		{"least-privilege roles", "role consumes another function's queue", func(t *testing.T, in *input) {
			statement(in, "SendMiniRole", "ConsumeOwnQueue")["Resource"] = snippet(t, `!GetAtt SendQueue.Arn`)
		}},
		{"least-privilege roles", "role writes to any log group", func(t *testing.T, in *input) {
			statement(in, "QueryRole", "WriteOwnLogGroup")["Resource"] = "arn:aws:logs:*:*:*"
		}},
		{"least-privilege roles", "extra statement", func(t *testing.T, in *input) {
			pol := policyStatements(in, "SendRole", "write-own-logs")
			policyDoc(in, "SendRole", "write-own-logs")["Statement"] = append(pol, snippet(t, `
{Effect: Allow, Action: s3:GetObject, Resource: !Ref WxpaySecretArn}`))
		}},
		{"least-privilege roles", "role assumable by another service", func(t *testing.T, in *input) {
			props(in, "SendRole")["AssumeRolePolicyDocument"] = snippet(t, `
Statement: [{Effect: Allow, Principal: {Service: ec2.amazonaws.com}, Action: sts:AssumeRole}]`)
		}},
		{"least-privilege roles", "ledger DeleteItem", func(t *testing.T, in *input) {
			st := statement(in, "SendRole", "UseLedger")
			st["Action"] = append(st["Action"].([]any), "dynamodb:DeleteItem")
		}},
		{"least-privilege roles", "ledger Scan", func(t *testing.T, in *input) {
			st := statement(in, "QueryRole", "UseLedger")
			st["Action"] = append(st["Action"].([]any), "dynamodb:Scan")
		}},
		{"least-privilege roles", "ledger dynamodb:*", func(t *testing.T, in *input) {
			statement(in, "SendGroupRole", "UseLedger")["Action"] = "dynamodb:*"
		}},
		{"least-privilege roles", "query function may PutItem", func(t *testing.T, in *input) {
			statement(in, "QueryRole", "UseLedger")["Action"] = []any{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
		}},
		{"least-privilege roles", "send function lacks UpdateItem", func(t *testing.T, in *input) {
			statement(in, "SendMiniRole", "UseLedger")["Action"] = []any{"dynamodb:GetItem", "dynamodb:PutItem"}
		}},
		{"least-privilege roles", "ledger statement removed", func(t *testing.T, in *input) {
			pols := props(in, "QueryRole")["Policies"].([]any)
			props(in, "QueryRole")["Policies"] = slices.DeleteFunc(pols, func(p any) bool {
				return p.(map[string]any)["PolicyName"] == "use-ledger"
			})
		}},
		{"least-privilege roles", "ledger actions on every table", func(t *testing.T, in *input) {
			statement(in, "SendRole", "UseLedger")["Resource"] = snippet(t,
				`!Sub 'arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*'`)
		}},
		{"least-privilege roles", "ledger index wildcard without the table", func(t *testing.T, in *input) {
			statement(in, "SendRole", "UseLedger")["Resource"] = snippet(t, `
- !Sub '${LedgerTable.Arn}/index/*'
- !Sub '${LedgerTable.Arn}*'`)
		}},
		{"least-privilege roles", "ledger table without its indexes", func(t *testing.T, in *input) {
			statement(in, "SendRole", "UseLedger")["Resource"] = snippet(t, `!GetAtt LedgerTable.Arn`)
		}},

		// queues
		{"queues and dead-letter queue", "no redrive", func(t *testing.T, in *input) {
			delete(props(in, "SendGroupQueue"), "RedrivePolicy")
		}},
		{"queues and dead-letter queue", "visibility timeout below function timeout", func(t *testing.T, in *input) {
			props(in, "SendQueue")["VisibilityTimeout"] = 20
		}},
		{"queues and dead-letter queue", "visibility timeout below 6x function timeout", func(t *testing.T, in *input) {
			props(in, "SendQueue")["VisibilityTimeout"] = 60
		}},
		{"queues and dead-letter queue", "no ReportBatchItemFailures", func(t *testing.T, in *input) {
			delete(eventProps(in, "SendMiniFunction", "Queue"), "FunctionResponseTypes")
		}},
		{"queues and dead-letter queue", "batch too large", func(t *testing.T, in *input) {
			eventProps(in, "SendMiniFunction", "Queue")["BatchSize"] = 100
		}},
		{"queues and dead-letter queue", "no maximum concurrency", func(t *testing.T, in *input) {
			delete(eventProps(in, "SendFunction", "Queue"), "ScalingConfig")
		}},
		{"queues and dead-letter queue", "queue shared by two functions", func(t *testing.T, in *input) {
			eventProps(in, "SendMiniFunction", "Queue")["Queue"] = snippet(t, `!GetAtt SendQueue.Arn`)
		}},
		{"queues and dead-letter queue", "maxReceiveCount 1", func(t *testing.T, in *input) {
			getMap(props(in, "SendQueue"), "RedrivePolicy")["maxReceiveCount"] = 1
		}},
		{"queues and dead-letter queue", "redrive to a queue not in the template", func(t *testing.T, in *input) {
			getMap(props(in, "SendQueue"), "RedrivePolicy")["deadLetterTargetArn"] = "arn:aws:sqs:us-east-1:123456789012:elsewhere"
		}},
		{"queues and dead-letter queue", "queue on the query function", func(t *testing.T, in *input) {
			events(in, "QueryFunction")["Queue"] = snippet(t, `
Type: SQS
Properties: {Queue: !GetAtt SendQueue.Arn, BatchSize: 10, FunctionResponseTypes: [ReportBatchItemFailures]}`)
		}},
		{"queues and dead-letter queue", "dead-letter queue keeps messages shorter than its sources", func(t *testing.T, in *input) {
			props(in, "RedpackDeadLetterQueue")["MessageRetentionPeriod"] = 60
		}},

		// runtime configuration
		{"runtime configuration", "text logs", func(t *testing.T, in *input) {
			getMap(globalsFn(in), "LoggingConfig")["LogFormat"] = "Text"
		}},
		{"runtime configuration", "log level not from parameter", func(t *testing.T, in *input) {
			getMap(globalsFn(in), "LoggingConfig")["ApplicationLogLevel"] = "DEBUG"
		}},
		{"runtime configuration", "log level parameter allows TRACE", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Parameters"), "LogLevel")["AllowedValues"] = []any{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}
		}},
		{"runtime configuration", "secret id hard-coded", func(t *testing.T, in *input) {
			globalEnv(in)["WXPAY_SECRET_ID"] = "wxpay/prod"
		}},
		{"runtime configuration", "base URL always set", func(t *testing.T, in *input) {
			globalEnv(in)["WXPAY_BASE_URL"] = "https://api.mch.weixin.qq.com"
		}},
		{"runtime configuration", "local-only variable deployed", func(t *testing.T, in *input) {
			globalEnv(in)["SSL_CERT_FILE"] = "/var/task/local-ca.pem"
		}},
		{"runtime configuration", "timeout beyond API Gateway's", func(t *testing.T, in *input) {
			globalsFn(in)["Timeout"] = 60
		}},
		{"runtime configuration", "reserved concurrency unconditional", func(t *testing.T, in *input) {
			globalsFn(in)["ReservedConcurrentExecutions"] = 0
		}},
		{"runtime configuration", "ledger table not set", func(t *testing.T, in *input) {
			delete(globalEnv(in), "WXPAY_LEDGER_TABLE")
		}},
		{"runtime configuration", "ledger table hard-coded", func(t *testing.T, in *input) {
			globalEnv(in)["WXPAY_LEDGER_TABLE"] = "wxpay-ledger"
		}},
		{"runtime configuration", "function overrides the ledger table", func(t *testing.T, in *input) {
			getMap(getMap(props(in, "QueryFunction"), "Environment"), "Variables")["WXPAY_LEDGER_TABLE"] = "other-ledger"
		}},
		{"runtime configuration", "local DynamoDB endpoint deployed", func(t *testing.T, in *input) {
			globalEnv(in)["AWS_ENDPOINT_URL_DYNAMODB"] = "http://localhost:8000"
		}},

		// outputs
		{"outputs", "ApiUrl missing", func(t *testing.T, in *input) {
			delete(getMap(in.tpl, "Outputs"), "ApiUrl")
		}},
		{"outputs", "ApiUrl wrong stage", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Outputs"), "ApiUrl")["Value"] = snippet(t,
				`!Sub 'https://${RedpackApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/Prod/'`)
		}},
		{"outputs", "dead-letter queue URL missing", func(t *testing.T, in *input) {
			delete(getMap(in.tpl, "Outputs"), "DeadLetterQueueUrl")
		}},
		{"outputs", "ledger table name missing", func(t *testing.T, in *input) {
			delete(getMap(in.tpl, "Outputs"), "LedgerTableName")
		}},

		// ledger table
		{"ledger table", "table missing", func(t *testing.T, in *input) {
			delete(resources(in), "LedgerTable")
		}},
		{"ledger table", "second table", func(t *testing.T, in *input) {
			resources(in)["OtherTable"] = resource(in, "LedgerTable")
		}},
		{"ledger table", "provisioned capacity", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["BillingMode"] = "PROVISIONED"
		}},
		{"ledger table", "point-in-time recovery off", func(t *testing.T, in *input) {
			getMap(props(in, "LedgerTable"), "PointInTimeRecoverySpecification")["PointInTimeRecoveryEnabled"] = false
		}},
		{"ledger table", "point-in-time recovery missing", func(t *testing.T, in *input) {
			delete(props(in, "LedgerTable"), "PointInTimeRecoverySpecification")
		}},
		{"ledger table", "encryption with the AWS owned key", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["SSESpecification"] = map[string]any{"SSEEnabled": false}
		}},
		{"ledger table", "customer-managed key the roles cannot use", func(t *testing.T, in *input) {
			getMap(props(in, "LedgerTable"), "SSESpecification")["KMSMasterKeyId"] = snippet(t, `!Ref KmsKeyArn`)
		}},
		{"ledger table", "deleted with the stack", func(t *testing.T, in *input) {
			resource(in, "LedgerTable")["DeletionPolicy"] = "Delete"
		}},
		{"ledger table", "dropped on replacement", func(t *testing.T, in *input) {
			delete(resource(in, "LedgerTable"), "UpdateReplacePolicy")
		}},
		{"ledger table", "deletion protection off", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["DeletionProtectionEnabled"] = false
		}},
		{"ledger table", "items expire", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["TimeToLiveSpecification"] = snippet(t, `{AttributeName: expires_at, Enabled: true}`)
		}},
		{"ledger table", "keys swapped", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["KeySchema"] = snippet(t, `
- {AttributeName: mch_billno, KeyType: HASH}
- {AttributeName: mch_id, KeyType: RANGE}`)
		}},
		{"ledger table", "no sort key", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["KeySchema"] = snippet(t, `[{AttributeName: mch_id, KeyType: HASH}]`)
		}},
		{"ledger table", "numeric key", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["AttributeDefinitions"] = snippet(t, `
- {AttributeName: mch_id, AttributeType: N}
- {AttributeName: mch_billno, AttributeType: S}`)
		}},
		{"ledger table", "SAM CRUD policy template on a function", func(t *testing.T, in *input) {
			props(in, "SendFunction")["Policies"] = snippet(t, `[{DynamoDBCrudPolicy: {TableName: !Ref LedgerTable}}]`)
		}},
		{"ledger table", "DeleteItem granted by another role", func(t *testing.T, in *input) {
			resources(in)["OperatorRole"] = snippet(t, `
Type: AWS::IAM::Role
Properties:
  AssumeRolePolicyDocument: {Statement: [{Effect: Allow, Principal: {AWS: !Ref AWS::AccountId}, Action: sts:AssumeRole}]}
  Policies:
    - PolicyName: tidy
      PolicyDocument:
        Statement: [{Effect: Allow, Action: dynamodb:DeleteItem, Resource: !GetAtt LedgerTable.Arn}]`)
		}},

		// env/local.json
		{"env/local.json", "variable the template does not declare", func(t *testing.T, in *input) {
			getMap(in.localEnv, "SendFunction")["WXPAY_TYPO"] = "x"
		}},
		{"env/local.json", "unknown function", func(t *testing.T, in *input) {
			in.localEnv["SendMoneyFunction"] = map[string]any{}
		}},
		{"env/local.json", "function without overrides", func(t *testing.T, in *input) {
			delete(in.localEnv, "QueryFunction")
		}},
		{"env/local.json", "no ledger table", func(t *testing.T, in *input) {
			delete(getMap(in.localEnv, "QueryFunction"), "WXPAY_LEDGER_TABLE")
		}},
		{"env/local.json", "no local DynamoDB endpoint", func(t *testing.T, in *input) {
			delete(getMap(in.localEnv, "SendMiniFunction"), "AWS_ENDPOINT_URL_DYNAMODB")
		}},
		{"env/local.json", "functions on different ledger tables", func(t *testing.T, in *input) {
			getMap(in.localEnv, "SendFunction")["WXPAY_LEDGER_TABLE"] = "another-ledger"
		}},

		// reconciler
		{"functions and build", "reconciler makefile target missing", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "build-ReconcileFunction:", "build-Reconcile:", 1)
		}},
		{"functions and build", "reconciler builds the query package", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "./functions/reconcile", "./functions/query", 1)
		}},
		{"functions and build", "reconciler missing", func(t *testing.T, in *input) {
			delete(resources(in), reconcilerID)
		}},
		{"reconciler", "reconciler missing", func(t *testing.T, in *input) {
			delete(resources(in), reconcilerID)
		}},
		{"reconciler", "no schedule", func(t *testing.T, in *input) {
			delete(props(in, reconcilerID), "Events")
		}},
		{"reconciler", "two schedules", func(t *testing.T, in *input) {
			events(in, reconcilerID)["Again"] = events(in, reconcilerID)["Schedule"]
		}},
		{"reconciler", "schedule hard-coded", func(t *testing.T, in *input) {
			eventProps(in, reconcilerID, "Schedule")["Schedule"] = "rate(1 minute)"
		}},
		{"reconciler", "schedule disabled", func(t *testing.T, in *input) {
			eventProps(in, reconcilerID, "Schedule")["Enabled"] = false
		}},
		{"reconciler", "schedule with an input naming a billno", func(t *testing.T, in *input) {
			eventProps(in, reconcilerID, "Schedule")["Input"] = `{"mch_billno": "10000098201411111234567890"}`
		}},
		{"reconciler", "schedule retried by EventBridge", func(t *testing.T, in *input) {
			delete(eventProps(in, reconcilerID, "Schedule"), "RetryPolicy")
		}},
		{"reconciler", "pass retried by Lambda", func(t *testing.T, in *input) {
			getMap(props(in, reconcilerID), "EventInvokeConfig")["MaximumRetryAttempts"] = 2
		}},
		{"reconciler", "no asynchronous invocation settings", func(t *testing.T, in *input) {
			delete(props(in, reconcilerID), "EventInvokeConfig")
		}},
		{"reconciler", "late passes kept for hours", func(t *testing.T, in *input) {
			getMap(props(in, reconcilerID), "EventInvokeConfig")["MaximumEventAgeInSeconds"] = 21600
		}},
		{"reconciler", "hourly by default", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Parameters"), "ReconcileSchedule")["Default"] = "rate(1 hour)"
		}},
		{"reconciler", "schedule parameter allows an hour", func(t *testing.T, in *input) {
			p := getMap(getMap(in.tpl, "Parameters"), "ReconcileSchedule")
			p["AllowedValues"] = append(p["AllowedValues"].([]any), "rate(1 hour)")
		}},
		{"reconciler", "schedule parameter allows cron", func(t *testing.T, in *input) {
			p := getMap(getMap(in.tpl, "Parameters"), "ReconcileSchedule")
			p["AllowedValues"] = append(p["AllowedValues"].([]any), "cron(0 * * * ? *)")
		}},
		{"reconciler", "schedule parameter free", func(t *testing.T, in *input) {
			delete(getMap(getMap(in.tpl, "Parameters"), "ReconcileSchedule"), "AllowedValues")
		}},
		{"reconciler", "budget set in the template", func(t *testing.T, in *input) {
			getMap(getMap(props(in, reconcilerID), "Environment"), "Variables")["WXPAY_RECONCILE_BUDGET"] = "100000"
		}},
		{"reconciler", "a bound the handler does not read", func(t *testing.T, in *input) {
			getMap(getMap(props(in, reconcilerID), "Environment"), "Variables")["WXPAY_RECONCILE_LIMIT"] = map[string]any{"Ref": "AWS::NoValue"}
		}},
		{"reconciler", "bounds not declared", func(t *testing.T, in *input) {
			delete(props(in, reconcilerID), "Environment")
		}},
		{"api is IAM-only", "reconciler behind the API", func(t *testing.T, in *input) {
			events(in, reconcilerID)["Api"] = snippet(t, `
Type: Api
Properties: {RestApiId: !Ref RedpackApi, Path: /reconcile, Method: post}`)
		}},
		{"routes match contract", "reconciler behind the API", func(t *testing.T, in *input) {
			events(in, reconcilerID)["Api"] = snippet(t, `
Type: Api
Properties: {RestApiId: !Ref RedpackApi, Path: /reconcile, Method: post}`)
		}},
		{"api is IAM-only", "reconciler function URL", func(t *testing.T, in *input) {
			props(in, reconcilerID)["FunctionUrlConfig"] = map[string]any{"AuthType": "AWS_IAM"}
		}},
		{"queues and dead-letter queue", "reconciler fed by a queue", func(t *testing.T, in *input) {
			events(in, reconcilerID)["Queue"] = snippet(t, `
Type: SQS
Properties: {Queue: !GetAtt SendQueue.Arn, BatchSize: 10, FunctionResponseTypes: [ReportBatchItemFailures]}`)
		}},
		{"runtime configuration", "reconciler timeout beyond a minute", func(t *testing.T, in *input) {
			props(in, reconcilerID)["Timeout"] = 300
		}},
		{"runtime configuration", "reconciler on the API's timeout", func(t *testing.T, in *input) {
			delete(props(in, reconcilerID), "Timeout")
		}},
		{"runtime configuration", "reconciler on another ledger", func(t *testing.T, in *input) {
			getMap(getMap(props(in, reconcilerID), "Environment"), "Variables")["WXPAY_LEDGER_TABLE"] = "other-ledger"
		}},
		{"least-privilege roles", "reconciler may PutItem", func(t *testing.T, in *input) {
			st := statement(in, "ReconcileRole", "UseLedger")
			st["Action"] = append(st["Action"].([]any), "dynamodb:PutItem")
		}},
		{"least-privilege roles", "reconciler may DeleteItem", func(t *testing.T, in *input) {
			st := statement(in, "ReconcileRole", "UseLedger")
			st["Action"] = append(st["Action"].([]any), "dynamodb:DeleteItem")
		}},
		{"least-privilege roles", "reconciler lacks UpdateItem", func(t *testing.T, in *input) {
			statement(in, "ReconcileRole", "UseLedger")["Action"] = []any{"dynamodb:GetItem"}
		}},
		{"least-privilege roles", "reconciler lacks Query", func(t *testing.T, in *input) {
			pol := policyStatements(in, "ReconcileRole", "use-ledger")
			policyDoc(in, "ReconcileRole", "use-ledger")["Statement"] = slices.DeleteFunc(pol, func(st any) bool {
				return st.(map[string]any)["Sid"] == "QueryDueIndex"
			})
		}},
		{"least-privilege roles", "reconciler Query on every index", func(t *testing.T, in *input) {
			statement(in, "ReconcileRole", "QueryDueIndex")["Resource"] = snippet(t, `!Sub '${LedgerTable.Arn}/index/*'`)
		}},
		{"least-privilege roles", "reconciler Query on the table", func(t *testing.T, in *input) {
			statement(in, "ReconcileRole", "QueryDueIndex")["Resource"] = snippet(t, `!GetAtt LedgerTable.Arn`)
		}},
		{"least-privilege roles", "reconciler Scan of the index", func(t *testing.T, in *input) {
			statement(in, "ReconcileRole", "QueryDueIndex")["Action"] = []any{"dynamodb:Query", "dynamodb:Scan"}
		}},
		{"least-privilege roles", "reconciler item actions on the indexes too", func(t *testing.T, in *input) {
			statement(in, "ReconcileRole", "UseLedger")["Resource"] = snippet(t, `[!GetAtt LedgerTable.Arn, !Sub '${LedgerTable.Arn}/index/*']`)
		}},
		{"least-privilege roles", "reconciler writes another function's logs", func(t *testing.T, in *input) {
			statement(in, "ReconcileRole", "WriteOwnLogGroup")["Resource"] = snippet(t, `!GetAtt SendLogGroup.Arn`)
		}},
		{"least-privilege roles", "reconciler without the secret", func(t *testing.T, in *input) {
			props(in, "ReconcileRole")["Policies"] = slices.DeleteFunc(props(in, "ReconcileRole")["Policies"].([]any), func(p any) bool {
				m, _ := p.(map[string]any)
				return m["PolicyName"] == "read-wxpay-secret"
			})
		}},
		{"least-privilege roles", "send function may Query the due index", func(t *testing.T, in *input) {
			pol := policyStatements(in, "SendRole", "use-ledger")
			policyDoc(in, "SendRole", "use-ledger")["Statement"] = append(pol, snippet(t, `
{Sid: QueryDueIndex, Effect: Allow, Action: dynamodb:Query, Resource: !Sub '${LedgerTable.Arn}/index/due'}`))
		}},
		{"least-privilege roles", "reconciler shares the query function's role", func(t *testing.T, in *input) {
			props(in, reconcilerID)["Role"] = snippet(t, `!GetAtt QueryRole.Arn`)
		}},
		{"egress modes", "reconciler outside the VPC", func(t *testing.T, in *input) {
			props(in, reconcilerID)["VpcConfig"] = map[string]any{"Ref": "AWS::NoValue"}
		}},
		{"egress modes", "reconciler's role without the network interface permissions", func(t *testing.T, in *input) {
			props(in, "ReconcileRole")["Policies"] = slices.DeleteFunc(props(in, "ReconcileRole")["Policies"].([]any), func(p any) bool {
				_, ok := fnIf(p)
				return ok
			})
		}},
		{"architecture", "reconciler on x86_64 always", func(t *testing.T, in *input) {
			props(in, reconcilerID)["Architectures"] = []any{"x86_64"}
		}},
		{"outputs", "reconciler name missing", func(t *testing.T, in *input) {
			delete(getMap(in.tpl, "Outputs"), "ReconcileFunctionName")
		}},
		{"env/local.json", "no overrides for the reconciler", func(t *testing.T, in *input) {
			delete(in.localEnv, reconcilerID)
		}},

		// the ledger's index
		{"ledger table", "no due index", func(t *testing.T, in *input) {
			delete(props(in, "LedgerTable"), "GlobalSecondaryIndexes")
		}},
		{"ledger table", "due index renamed", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["GlobalSecondaryIndexes"].([]any)[0].(map[string]any)["IndexName"] = "next-check"
		}},
		{"ledger table", "due index keys swapped", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["GlobalSecondaryIndexes"].([]any)[0].(map[string]any)["KeySchema"] = snippet(t, `
- {AttributeName: next_check_at, KeyType: HASH}
- {AttributeName: due, KeyType: RANGE}`)
		}},
		{"ledger table", "due index keys only", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["GlobalSecondaryIndexes"].([]any)[0].(map[string]any)["Projection"] = snippet(t, `{ProjectionType: KEYS_ONLY}`)
		}},
		{"ledger table", "due index provisioned", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["GlobalSecondaryIndexes"].([]any)[0].(map[string]any)["ProvisionedThroughput"] = snippet(t, `{ReadCapacityUnits: 5, WriteCapacityUnits: 5}`)
		}},
		{"ledger table", "next check numeric", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["AttributeDefinitions"].([]any)[3] = snippet(t, `{AttributeName: next_check_at, AttributeType: N}`)
		}},
		{"ledger table", "index attribute not defined", func(t *testing.T, in *input) {
			props(in, "LedgerTable")["AttributeDefinitions"] = props(in, "LedgerTable")["AttributeDefinitions"].([]any)[:3]
		}},
		{"ledger table", "a second index", func(t *testing.T, in *input) {
			p := props(in, "LedgerTable")
			p["GlobalSecondaryIndexes"] = append(p["GlobalSecondaryIndexes"].([]any), snippet(t, `
{IndexName: by-state, KeySchema: [{AttributeName: due, KeyType: HASH}], Projection: {ProjectionType: ALL}}`))
		}},

		// alarms
		{"alarms", "unknown alarm missing", func(t *testing.T, in *input) {
			delete(resources(in), "UnknownOverOneHourAlarm")
		}},
		{"alarms", "dead-letter alarm missing", func(t *testing.T, in *input) {
			delete(resources(in), "RedpackDeadLetterAlarm")
		}},
		{"alarms", "unknown alarm on the average", func(t *testing.T, in *input) {
			props(in, "UnknownOverOneHourAlarm")["Statistic"] = "Average"
		}},
		{"alarms", "unknown alarm on another metric", func(t *testing.T, in *input) {
			props(in, "UnknownOverOneHourAlarm")["MetricName"] = "Unknowns"
		}},
		{"alarms", "needs-attention alarm above 1", func(t *testing.T, in *input) {
			props(in, "NeedsAttentionAlarm")["Threshold"] = 1
		}},
		{"alarms", "needs-attention alarm after an hour", func(t *testing.T, in *input) {
			props(in, "NeedsAttentionAlarm")["Period"] = 3600
		}},
		{"alarms", "needs-attention alarm in another namespace", func(t *testing.T, in *input) {
			props(in, "NeedsAttentionAlarm")["Namespace"] = "wxredpack"
		}},
		{"alarms", "alarm with a dimension the metric lacks", func(t *testing.T, in *input) {
			props(in, "NeedsAttentionAlarm")["Dimensions"] = snippet(t, `[{Name: Function, Value: reconcile}]`)
		}},
		{"alarms", "alarm with a unit", func(t *testing.T, in *input) {
			props(in, "UnknownOverOneHourAlarm")["Unit"] = "Seconds"
		}},
		{"alarms", "count alarm breaching on missing data", func(t *testing.T, in *input) {
			props(in, "NeedsAttentionAlarm")["TreatMissingData"] = "breaching"
		}},
		{"alarms", "stall alarm quiet on missing data", func(t *testing.T, in *input) {
			props(in, "ReconcilerStalledAlarm")["TreatMissingData"] = "notBreaching"
		}},
		{"alarms", "stall alarm after one empty period", func(t *testing.T, in *input) {
			props(in, "ReconcilerStalledAlarm")["DatapointsToAlarm"] = 1
		}},
		{"alarms", "alarm notifies no one", func(t *testing.T, in *input) {
			delete(props(in, "NeedsAttentionAlarm"), "AlarmActions")
		}},
		{"alarms", "alarm notifies a topic always", func(t *testing.T, in *input) {
			props(in, "UnknownOverOneHourAlarm")["AlarmActions"] = snippet(t, `[!Ref AlarmTopicArn]`)
		}},
		{"alarms", "dead-letter alarm on a send queue", func(t *testing.T, in *input) {
			props(in, "RedpackDeadLetterAlarm")["Dimensions"] = snippet(t, `[{Name: QueueName, Value: !GetAtt SendQueue.QueueName}]`)
		}},
		{"alarms", "extra alarm", func(t *testing.T, in *input) {
			resources(in)["OtherAlarm"] = resource(in, "NeedsAttentionAlarm")
		}},

		// dashboard
		{"dashboard", "dashboard missing", func(t *testing.T, in *input) {
			delete(resources(in), "Dashboard")
		}},
		{"dashboard", "body not JSON", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `"widgets": [`, `"widgets": [,`, 1)
		}},
		{"dashboard", "body a plain string", func(t *testing.T, in *input) {
			props(in, "Dashboard")["DashboardBody"] = getMap(props(in, "Dashboard"), "DashboardBody")["Fn::Sub"]
		}},
		{"dashboard", "region hard-coded", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `"region": "${AWS::Region}"`, `"region": "us-east-1"`, 1)
		}},
		{"dashboard", "body refers to a resource that does not exist", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), "${SendFunction}", "${SendRedpackFunction}", 1)
		}},
		{"dashboard", "no transitions", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `MetricName=\"Transitions\"`, `MetricName=\"Moves\"`, 1)
		}},
		{"dashboard", "sends without their outcome", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `{WxRedpack,Function,Api,Outcome}`, `{WxRedpack,Function,Api}`, 1)
		}},
		{"dashboard", "no oldest unsettled age", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `"OldestUnsettledAgeSeconds"`, `"OldestUnsettledAge"`, 1)
		}},
		{"dashboard", "no throttles of the reconciler", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `"Throttles", "FunctionName", "${ReconcileFunction}"`, `"Throttles", "FunctionName", "${QueryFunction}"`, 1)
		}},
		{"dashboard", "no dead-letter queue", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), "${RedpackDeadLetterQueue.QueueName}", "${SendQueue.QueueName}", 1)
		}},
		{"dashboard", "an alarm not shown", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `"${ReconcilerStalledAlarm.Arn}",`, ``, 1)
		}},
		{"dashboard", "widget off the grid", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `"x": 12, "y": 2, "width": 6`, `"x": 20, "y": 2, "width": 6`, 1)
		}},
		{"dashboard", "name the same in every region", func(t *testing.T, in *input) {
			props(in, "Dashboard")["DashboardName"] = snippet(t, `!Sub '${AWS::StackName}'`)
		}},
		{"outputs", "dashboard name missing", func(t *testing.T, in *input) {
			delete(getMap(in.tpl, "Outputs"), "DashboardName")
		}},
		{"outputs", "dashboard URL on the global console in China", func(t *testing.T, in *input) {
			ifv, _ := fnIf(getMap(getMap(in.tpl, "Outputs"), "DashboardUrl")["Value"])
			ifv[1], ifv[2] = ifv[2], ifv[1]
		}},
		{"outputs", "dashboard URL without the partition", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Outputs"), "DashboardUrl")["Value"] = snippet(t,
				`!Sub 'https://console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=${Dashboard}'`)
		}},
		{"outputs", "dashboard URL of another dashboard", func(t *testing.T, in *input) {
			ifv, _ := fnIf(getMap(getMap(in.tpl, "Outputs"), "DashboardUrl")["Value"])
			ifv[1] = snippet(t, `!Sub 'https://console.amazonaws.cn/cloudwatch/home?region=${AWS::Region}#dashboards:name=wxredpack'`)
		}},
		{"partition", "dashboard URL on the amazonaws.com domain", func(t *testing.T, in *input) {
			ifv, _ := fnIf(getMap(getMap(in.tpl, "Outputs"), "DashboardUrl")["Value"])
			ifv[2] = snippet(t, `!Sub 'https://console.amazonaws.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=${Dashboard}'`)
		}},

		// campaigns
		{"functions and build", "campaign runner builds the campaigns package", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "./functions/campaignrun", "./functions/campaigns", 1)
		}},
		{"functions and build", "campaigns makefile target missing", func(t *testing.T, in *input) {
			in.makefile = strings.Replace(in.makefile, "build-CampaignsFunction:", "build-Campaigns:", 1)
		}},
		{"routes match contract", "campaign route missing", func(t *testing.T, in *input) {
			delete(events(in, campaignsID), "Cancel")
		}},
		{"routes match contract", "campaign pause by GET", func(t *testing.T, in *input) {
			eventProps(in, campaignsID, "Pause")["Method"] = "get"
		}},
		{"api is IAM-only", "campaign route without IAM", func(t *testing.T, in *input) {
			eventProps(in, campaignsID, "Get")["Auth"] = snippet(t, `{Authorizer: NONE}`)
		}},
		{"api is IAM-only", "campaign runner behind the API", func(t *testing.T, in *input) {
			events(in, campaignRunID)["Api"] = snippet(t, `
Type: Api
Properties: {RestApiId: !Ref RedpackApi, Path: /run, Method: post}`)
		}},
		{"least-privilege roles", "campaign runner may DeleteItem on the ledger", func(t *testing.T, in *input) {
			st := statement(in, "CampaignRunRole", "UseLedger")
			st["Action"] = append(st["Action"].([]any), "dynamodb:DeleteItem")
		}},
		{"ledger table", "campaign runner may DeleteItem on the campaigns", func(t *testing.T, in *input) {
			st := statement(in, "CampaignRunRole", "UseCampaignTable")
			st["Action"] = append(st["Action"].([]any), "dynamodb:DeleteItem")
		}},
		{"ledger table", "campaigns function scans the ledger", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "UseCampaignTable")["Resource"] = snippet(t, `!GetAtt LedgerTable.Arn`)
		}},
		{"least-privilege roles", "campaigns function writes the ledger", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "UseLedger")["Action"] = []any{"dynamodb:GetItem", "dynamodb:PutItem"}
		}},
		{"least-privilege roles", "campaigns function Queries the due index", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "QueryCampaignIndex")["Resource"] = snippet(t, `!Sub '${LedgerTable.Arn}/index/due'`)
		}},
		{"least-privilege roles", "campaign runner Queries every index", func(t *testing.T, in *input) {
			statement(in, "CampaignRunRole", "QueryCampaignIndex")["Resource"] = snippet(t, `!Sub '${LedgerTable.Arn}/index/*'`)
		}},
		{"least-privilege roles", "campaign runner cannot UpdateItem its campaigns", func(t *testing.T, in *input) {
			statement(in, "CampaignRunRole", "UseCampaignTable")["Action"] = []any{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"}
		}},
		{"least-privilege roles", "send function may PutItem campaigns", func(t *testing.T, in *input) {
			statement(in, "SendRole", "CountSends")["Action"] = []any{"dynamodb:UpdateItem", "dynamodb:PutItem"}
		}},
		{"least-privilege roles", "send function does not count its sends", func(t *testing.T, in *input) {
			props(in, "SendMiniRole")["Policies"] = slices.DeleteFunc(props(in, "SendMiniRole")["Policies"].([]any), func(p any) bool {
				m, _ := p.(map[string]any)
				return m["PolicyName"] == "count-sends"
			})
		}},
		{"least-privilege roles", "reconciler cannot mark reports", func(t *testing.T, in *input) {
			statement(in, "ReconcileRole", "MarkCampaignReports")["Action"] = []any{"dynamodb:GetItem"}
		}},
		{"least-privilege roles", "campaigns function reads the whole bucket", func(t *testing.T, in *input) {
			statement(in, "CampaignRunRole", "ReadCampaignFiles")["Resource"] = snippet(t, `!Sub '${CampaignBucket.Arn}/*'`)
		}},
		{"least-privilege roles", "campaign runner deletes files", func(t *testing.T, in *input) {
			statement(in, "CampaignRunRole", "ReadCampaignFiles")["Action"] = []any{"s3:GetObject", "s3:DeleteObject"}
		}},
		{"least-privilege roles", "campaigns function writes into incoming/", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "WriteCampaignReports")["Resource"] = statement(in, "CampaignsRole", "ReadCampaignFiles")["Resource"]
		}},
		{"least-privilege roles", "campaigns function's bucket ARN names another bucket", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "ReadCampaignFiles")["Resource"] = snippet(t, `!Sub 'arn:${AWS::Partition}:s3:::other-bucket/incoming/*'`)
		}},
		{"least-privilege roles", "bucket key usable through any service", func(t *testing.T, in *input) {
			delete(statement(in, "CampaignRunRole", "UseCampaignBucketKey"), "Condition")
		}},
		{"least-privilege roles", "campaigns function lists the bucket without the condition", func(t *testing.T, in *input) {
			delete(statement(in, "CampaignsRole", "ListCampaignFiles"), "Condition")
		}},
		{"least-privilege roles", "campaigns function lists the whole bucket", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "ListCampaignFiles")["Condition"] = snippet(t, `{StringLike: {s3:prefix: '*'}}`)
		}},
		{"least-privilege roles", "campaigns function lists under another condition", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "ListCampaignFiles")["Condition"] = snippet(t, `{StringLike: {s3:prefix: incoming/*, s3:delimiter: /}}`)
		}},
		{"least-privilege roles", "campaigns function reads the bucket itself", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "ListCampaignFiles")["Action"] = []any{"s3:ListBucket", "s3:GetBucketPolicy"}
		}},
		{"least-privilege roles", "campaigns function lists another bucket", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "ListCampaignFiles")["Resource"] = snippet(t, `!Sub 'arn:${AWS::Partition}:s3:::other-bucket'`)
		}},
		{"least-privilege roles", "campaigns function lists on its objects", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "ListCampaignFiles")["Resource"] = statement(in, "CampaignsRole", "ReadCampaignFiles")["Resource"]
		}},
		{"least-privilege roles", "campaigns function cannot list incoming/", func(t *testing.T, in *input) {
			pol := policyStatements(in, "CampaignsRole", "use-campaign-bucket")
			policyDoc(in, "CampaignsRole", "use-campaign-bucket")["Statement"] = slices.DeleteFunc(slices.Clone(pol), func(st any) bool {
				m, _ := st.(map[string]any)
				return m["Sid"] == "ListCampaignFiles"
			})
		}},
		{"least-privilege roles", "campaign runner lists the bucket", func(t *testing.T, in *input) {
			pol := policyStatements(in, "CampaignRunRole", "use-campaign-bucket")
			policyDoc(in, "CampaignRunRole", "use-campaign-bucket")["Statement"] = append(pol, statement(in, "CampaignsRole", "ListCampaignFiles"))
		}},
		{"least-privilege roles", "query function reads campaign files", func(t *testing.T, in *input) {
			pol := policyStatements(in, "QueryRole", "write-own-logs")
			policyDoc(in, "QueryRole", "write-own-logs")["Statement"] = append(pol, snippet(t, `
{Effect: Allow, Action: s3:GetObject, Resource: !Sub '${CampaignBucket.Arn}/incoming/*'}`))
		}},
		{"runtime configuration", "campaigns function on another table", func(t *testing.T, in *input) {
			getMap(getMap(props(in, campaignsID), "Environment"), "Variables")["WXPAY_CAMPAIGN_TABLE"] = "campaigns"
		}},
		{"runtime configuration", "send function without the campaign table", func(t *testing.T, in *input) {
			delete(getMap(getMap(props(in, "SendFunction"), "Environment"), "Variables"), "WXPAY_CAMPAIGN_TABLE")
		}},
		{"runtime configuration", "send function without the rate limit", func(t *testing.T, in *input) {
			delete(getMap(getMap(props(in, "SendGroupFunction"), "Environment"), "Variables"), "WXPAY_RATE_LIMIT")
		}},
		{"runtime configuration", "rate limit hard-coded", func(t *testing.T, in *input) {
			getMap(getMap(props(in, campaignRunID), "Environment"), "Variables")["WXPAY_RATE_LIMIT"] = "30"
		}},
		{"runtime configuration", "reserve from the limit parameter", func(t *testing.T, in *input) {
			getMap(getMap(props(in, campaignsID), "Environment"), "Variables")["WXPAY_API_RESERVE"] = snippet(t, `!Ref WxpayRateLimit`)
		}},
		{"runtime configuration", "campaign bucket name of another bucket", func(t *testing.T, in *input) {
			getMap(getMap(props(in, campaignsID), "Environment"), "Variables")["WXPAY_CAMPAIGN_BUCKET"] = snippet(t, `!Sub 'wxredpack-campaigns-${AWS::AccountId}'`)
		}},
		{"runtime configuration", "query function with the campaign table", func(t *testing.T, in *input) {
			props(in, "QueryFunction")["Environment"] = snippet(t, `{Variables: {WXPAY_CAMPAIGN_TABLE: !Ref CampaignTable}}`)
		}},
		{"runtime configuration", "reconciler without the campaign table", func(t *testing.T, in *input) {
			delete(getMap(getMap(props(in, reconcilerID), "Environment"), "Variables"), "WXPAY_CAMPAIGN_TABLE")
		}},
		{"runtime configuration", "campaign runner's timeout", func(t *testing.T, in *input) {
			props(in, campaignRunID)["Timeout"] = 60
		}},
		{"runtime configuration", "campaigns function beyond API Gateway's timeout", func(t *testing.T, in *input) {
			props(in, campaignsID)["Timeout"] = 30
		}},
		{"runtime configuration", "campaign runner's memory", func(t *testing.T, in *input) {
			delete(props(in, campaignRunID), "MemorySize")
		}},
		{"outputs", "campaign bucket name missing", func(t *testing.T, in *input) {
			delete(getMap(in.tpl, "Outputs"), "CampaignBucketName")
		}},
		{"outputs", "campaigns API URL on another stage", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Outputs"), "CampaignsApiUrl")["Value"] = snippet(t, `!Sub 'https://${RedpackApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/Prod/campaigns'`)
		}},
		{"ledger table", "a third table", func(t *testing.T, in *input) {
			resources(in)["OtherTable"] = resource(in, campaignTableID)
		}},
		{"campaigns", "campaign table deleted with the stack", func(t *testing.T, in *input) {
			resource(in, campaignTableID)["DeletionPolicy"] = "Delete"
		}},
		{"campaigns", "campaign table without deletion protection", func(t *testing.T, in *input) {
			props(in, campaignTableID)["DeletionProtectionEnabled"] = false
		}},
		{"campaigns", "campaign table without point-in-time recovery", func(t *testing.T, in *input) {
			delete(props(in, campaignTableID), "PointInTimeRecoverySpecification")
		}},
		{"campaigns", "campaign table with a sort key", func(t *testing.T, in *input) {
			props(in, campaignTableID)["KeySchema"] = snippet(t, `[{AttributeName: id, KeyType: HASH}, {AttributeName: mch_id, KeyType: RANGE}]`)
		}},
		{"campaigns", "bucket deleted with the stack", func(t *testing.T, in *input) {
			resource(in, campaignBucketID)["DeletionPolicy"] = "Delete"
		}},
		{"campaigns", "bucket replaced and dropped", func(t *testing.T, in *input) {
			delete(resource(in, campaignBucketID), "UpdateReplacePolicy")
		}},
		{"campaigns", "bucket public policies allowed", func(t *testing.T, in *input) {
			getMap(props(in, campaignBucketID), "PublicAccessBlockConfiguration")["BlockPublicPolicy"] = false
		}},
		{"campaigns", "bucket unversioned", func(t *testing.T, in *input) {
			delete(props(in, campaignBucketID), "VersioningConfiguration")
		}},
		{"campaigns", "bucket ACLs enabled", func(t *testing.T, in *input) {
			props(in, campaignBucketID)["OwnershipControls"] = snippet(t, `{Rules: [{ObjectOwnership: ObjectWriter}]}`)
		}},
		{"campaigns", "bucket always SSE-S3", func(t *testing.T, in *input) {
			props(in, campaignBucketID)["BucketEncryption"] = snippet(t, `{ServerSideEncryptionConfiguration: [{ServerSideEncryptionByDefault: {SSEAlgorithm: AES256}}]}`)
		}},
		{"campaigns", "bucket name from the stack name", func(t *testing.T, in *input) {
			props(in, campaignBucketID)["BucketName"] = snippet(t, `!Sub ['${AWS::StackName}-campaigns-${X}', {X: !Ref AWS::AccountId}]`)
		}},
		{"campaigns", "bucket allows plain HTTP", func(t *testing.T, in *input) {
			delete(resources(in), "CampaignBucketPolicy")
		}},
		{"campaigns", "S3 event on every object", func(t *testing.T, in *input) {
			delete(eventProps(in, campaignsID, "Incoming"), "Filter")
		}},
		{"campaigns", "S3 event on reports/", func(t *testing.T, in *input) {
			eventProps(in, campaignsID, "Incoming")["Filter"] = snippet(t, `{S3Key: {Rules: [{Name: prefix, Value: reports/}]}}`)
		}},
		{"campaigns", "S3 event on deletions", func(t *testing.T, in *input) {
			eventProps(in, campaignsID, "Incoming")["Events"] = "s3:ObjectRemoved:*"
		}},
		{"campaigns", "S3 event missing", func(t *testing.T, in *input) {
			delete(events(in, campaignsID), "Incoming")
		}},
		{"campaigns", "runner every hour", func(t *testing.T, in *input) {
			eventProps(in, campaignRunID, "Schedule")["Schedule"] = "rate(1 hour)"
		}},
		{"campaigns", "runner retried by EventBridge", func(t *testing.T, in *input) {
			delete(eventProps(in, campaignRunID, "Schedule"), "RetryPolicy")
		}},
		{"campaigns", "runner with reserved concurrency", func(t *testing.T, in *input) {
			delete(props(in, campaignRunID), "ReservedConcurrentExecutions")
		}},
		{"campaigns", "reserve default not below the limit", func(t *testing.T, in *input) {
			getMap(getMap(in.tpl, "Parameters"), "WxpayApiReserve")["Default"] = 30
		}},
		{"campaigns", "circular dependency through the role", func(t *testing.T, in *input) {
			statement(in, "CampaignsRole", "ReadCampaignFiles")["Resource"] = snippet(t, `!Sub '${CampaignBucket.Arn}/incoming/*'`)
		}},
		{"campaigns", "circular dependency through the environment", func(t *testing.T, in *input) {
			getMap(getMap(props(in, campaignsID), "Environment"), "Variables")["WXPAY_CAMPAIGN_BUCKET"] = snippet(t, `!Ref CampaignBucket`)
		}},
		{"alarms", "campaign paused alarm missing", func(t *testing.T, in *input) {
			delete(resources(in), "CampaignPausedAlarm")
		}},
		{"alarms", "campaign paused alarm over 5 minutes", func(t *testing.T, in *input) {
			props(in, "CampaignPausedAlarm")["Period"] = 300
		}},
		{"dashboard", "no campaign sends", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `"CampaignSends"`, `"CampaignSent"`, 1)
		}},
		{"dashboard", "no errors of the campaign runner", func(t *testing.T, in *input) {
			sub := getMap(props(in, "Dashboard"), "DashboardBody")
			sub["Fn::Sub"] = strings.Replace(sub["Fn::Sub"].(string), `"Errors", "FunctionName", "${CampaignRunFunction}"`, `"Errors", "FunctionName", "${CampaignsFunction}"`, 1)
		}},
		{"egress modes", "campaign runner outside the VPC", func(t *testing.T, in *input) {
			props(in, campaignRunID)["VpcConfig"] = map[string]any{"Ref": "AWS::NoValue"}
		}},
		{"env/local.json", "campaign runner without its bucket", func(t *testing.T, in *input) {
			delete(getMap(in.localEnv, campaignRunID), "WXPAY_CAMPAIGN_BUCKET")
		}},
		{"env/local.json", "send function without the campaign table", func(t *testing.T, in *input) {
			delete(getMap(in.localEnv, "SendFunction"), "WXPAY_CAMPAIGN_TABLE")
		}},
		{"env/local.json", "functions on different campaign tables", func(t *testing.T, in *input) {
			getMap(in.localEnv, "SendFunction")["WXPAY_CAMPAIGN_TABLE"] = "another"
		}},
	}
	byName := map[string]func(*input) error{}
	for _, c := range checks {
		byName[c.name] = c.fn
	}
	for _, tc := range cases {
		t.Run(tc.check+"/"+tc.name, func(t *testing.T) {
			fn := byName[tc.check]
			if fn == nil {
				t.Fatalf("no check %q", tc.check)
			}
			in := load(t)
			if err := fn(in); err != nil {
				t.Fatalf("check fails before the mutation: %v", err)
			}
			tc.mutate(t, in)
			err := fn(in)
			if err == nil {
				t.Fatalf("check %q accepted the broken template", tc.check)
			}
			t.Logf("rejected as expected: %v", err)
		})
	}
}

// TestDecodeIntrinsics pins how CloudFormation short tags are decoded.
func TestDecodeIntrinsics(t *testing.T) {
	got := snippet(t, `
a: !Ref X
b: !GetAtt Q.Arn
c: !Sub 'https://${A}/'
d: !If [C, !Ref P, !Ref AWS::NoValue]
e: !Not [!Equals [!Ref K, '']]
f: !GetAtt [Q, QueueName]
g: [1, '2', true]
h: &anchor {x: 1}
i: *anchor
`)
	want := map[string]any{
		"a": map[string]any{"Ref": "X"},
		"b": map[string]any{"Fn::GetAtt": []any{"Q", "Arn"}},
		"c": map[string]any{"Fn::Sub": "https://${A}/"},
		"d": map[string]any{"Fn::If": []any{"C", map[string]any{"Ref": "P"}, map[string]any{"Ref": "AWS::NoValue"}}},
		"e": map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "K"}, ""}}}},
		"f": map[string]any{"Fn::GetAtt": []any{"Q", "QueueName"}},
		"g": []any{1, "2", true},
		"h": map[string]any{"x": 1},
		"i": map[string]any{"x": 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%#v\nwant\n%#v", got, want)
	}
}

// ---------------------------------------------------------------------------
// Loading and decoding

func load(t *testing.T) *input {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := parseYAML(raw)
	if err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	m, ok := tpl.(map[string]any)
	if !ok {
		t.Fatalf("template.yaml: top level is %T, want a mapping", tpl)
	}
	mk, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	envRaw, err := os.ReadFile(filepath.Join("..", "env", "local.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(envRaw, &env); err != nil {
		t.Fatalf("env/local.json: %v", err)
	}
	return &input{tpl: m, makefile: string(mk), localEnv: env}
}

func snippet(t *testing.T, src string) any {
	t.Helper()
	v, err := parseYAML([]byte(src))
	if err != nil {
		t.Fatalf("snippet: %v", err)
	}
	return v
}

func parseYAML(src []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty document")
	}
	return decode(doc.Content[0])
}

// decode turns a yaml.Node into plain Go values. A node with a
// CloudFormation short tag (!Ref, !GetAtt, !Sub, !If, ...) becomes the long
// form: {"Ref": ...} or {"Fn::<Name>": ...}; !GetAtt A.B becomes [A, B].
func decode(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		return decode(n.Alias)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		name := strings.TrimPrefix(n.Tag, "!")
		key := "Fn::" + name
		if name == "Ref" || name == "Condition" {
			key = name
		}
		var val any
		switch n.Kind {
		case yaml.ScalarNode:
			val = n.Value
			if name == "GetAtt" {
				res, attr, ok := strings.Cut(n.Value, ".")
				if !ok {
					return nil, fmt.Errorf("line %d: !GetAtt %q has no attribute", n.Line, n.Value)
				}
				val = []any{res, attr}
			}
		default:
			plain := *n
			plain.Tag = ""
			v, err := decode(&plain)
			if err != nil {
				return nil, err
			}
			val = v
		}
		return map[string]any{key: val}, nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", n.Content[i].Line, k)
			}
			v, err := decode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := decode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected node kind %v", n.Line, n.Kind)
}

// ---------------------------------------------------------------------------
// Navigation helpers (used by the checks and to break templates in tests)

func getMap(m map[string]any, key string) map[string]any {
	v, _ := m[key].(map[string]any)
	if v == nil {
		return map[string]any{}
	}
	return v
}

func resources(in *input) map[string]any { return getMap(in.tpl, "Resources") }

func resource(in *input, id string) map[string]any { return getMap(resources(in), id) }

func props(in *input, id string) map[string]any { return getMap(resource(in, id), "Properties") }

func globalsFn(in *input) map[string]any { return getMap(getMap(in.tpl, "Globals"), "Function") }

func globalEnv(in *input) map[string]any {
	return getMap(getMap(globalsFn(in), "Environment"), "Variables")
}

func events(in *input, fn string) map[string]any { return getMap(props(in, fn), "Events") }

func eventProps(in *input, fn, ev string) map[string]any {
	return getMap(getMap(events(in, fn), ev), "Properties")
}

func policyDoc(in *input, role, name string) map[string]any {
	pols, _ := props(in, role)["Policies"].([]any)
	for _, p := range pols {
		pm, _ := p.(map[string]any)
		if pm["PolicyName"] == name {
			return getMap(pm, "PolicyDocument")
		}
	}
	return map[string]any{}
}

func policyStatements(in *input, role, name string) []any {
	s, _ := policyDoc(in, role, name)["Statement"].([]any)
	return s
}

// statement finds a statement by Sid in a role's inline policies.
func statement(in *input, role, sid string) map[string]any {
	for _, st := range roleStatements(props(in, role)) {
		if st.body["Sid"] == sid {
			return st.body
		}
	}
	return map[string]any{}
}

// fnProp is a function's effective property: its own, else the Globals one.
func fnProp(in *input, fn, key string) any {
	if v, ok := props(in, fn)[key]; ok {
		return v
	}
	return globalsFn(in)[key]
}

// fnEnv is a function's effective environment (Globals merged with its own).
func fnEnv(in *input, fn string) map[string]any {
	env := map[string]any{}
	for k, v := range globalEnv(in) {
		env[k] = v
	}
	for k, v := range getMap(getMap(props(in, fn), "Environment"), "Variables") {
		env[k] = v
	}
	return env
}

func ref(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	s, ok := m["Ref"].(string)
	return s, ok
}

func isRef(v any, name string) bool {
	s, ok := ref(v)
	return ok && s == name
}

// getAtt returns the resource of a {"Fn::GetAtt": [res, attr]}.
func getAtt(v any, attr string) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	l, ok := m["Fn::GetAtt"].([]any)
	if !ok || len(l) != 2 || l[1] != attr {
		return "", false
	}
	s, ok := l[0].(string)
	return s, ok
}

func isNoValue(v any) bool { return isRef(v, "AWS::NoValue") }

// fnIf returns the [condition, then, else] of a {"Fn::If": [...]}.
func fnIf(v any) ([]any, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, false
	}
	l, ok := m["Fn::If"].([]any)
	return l, ok && len(l) == 3
}

// number resolves a literal number, or a Ref to a parameter's Default.
func (in *input) number(v any) (float64, bool) {
	if p, ok := ref(v); ok {
		v = getMap(getMap(in.tpl, "Parameters"), p)["Default"]
	}
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

func (in *input) ofType(typ string) []string {
	var ids []string
	for id := range resources(in) {
		if resource(in, id)["Type"] == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// refsIn lists every Ref name anywhere inside v.
func refsIn(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := ref(x); ok {
				out = append(out, s)
				return
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}

// stringsIn lists every string scalar anywhere inside v.
func stringsIn(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}

type errs []error

func (e *errs) add(format string, a ...any) { *e = append(*e, fmt.Errorf(format, a...)) }

func (e errs) err() error { return errors.Join(e...) }

// ---------------------------------------------------------------------------
// Makefile helpers

var makeVarRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?=|:=|::=|=)\s*(.*)$`)

func makeVars(mk string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(mk, "\n") {
		if m := makeVarRE.FindStringSubmatch(line); m != nil {
			vars[m[1]] = strings.TrimSpace(m[2])
		}
	}
	return vars
}

var makeRefRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) for variables the Makefile defines; others (such
// as ARTIFACTS_DIR, which SAM provides) stay as written.
func expand(s string, vars map[string]string) string {
	for range 10 {
		next := makeRefRE.ReplaceAllStringFunc(s, func(m string) string {
			if v, ok := vars[makeRefRE.FindStringSubmatch(m)[1]]; ok {
				return v
			}
			return m
		})
		if next == s {
			break
		}
		s = next
	}
	return s
}

// recipe returns the recipe lines of a target, or false if it has none.
func recipe(mk, target string) (string, bool) {
	lines := strings.Split(mk, "\n")
	for i, line := range lines {
		name, _, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != target || strings.HasPrefix(line, "\t") {
			continue
		}
		var body []string
		for _, l := range lines[i+1:] {
			if !strings.HasPrefix(l, "\t") {
				break
			}
			body = append(body, strings.TrimPrefix(l, "\t"))
		}
		return strings.Join(body, "\n"), len(body) > 0
	}
	return "", false
}

// ---------------------------------------------------------------------------
// Checks

func checkFunctions(in *input) error {
	var e errs
	want := map[string]bool{}
	vars := makeVars(in.makefile)
	for _, f := range contract {
		want[f.ID] = true
		r := resource(in, f.ID)
		if r["Type"] != "AWS::Serverless::Function" {
			e.add("%s: missing or not an AWS::Serverless::Function (type %v)", f.ID, r["Type"])
			continue
		}
		if bm := getMap(r, "Metadata")["BuildMethod"]; bm != "makefile" {
			e.add("%s: Metadata.BuildMethod is %v, want makefile", f.ID, bm)
		}
		if v := fnProp(in, f.ID, "CodeUri"); v != "." {
			e.add("%s: CodeUri is %v, want . (the Makefile and go.mod are at the root)", f.ID, v)
		}
		if v := fnProp(in, f.ID, "Runtime"); v != "provided.al2023" {
			e.add("%s: Runtime is %v, want provided.al2023", f.ID, v)
		}
		if v := fnProp(in, f.ID, "Architectures"); !reflect.DeepEqual(v, []any{map[string]any{"Ref": "Architecture"}}) {
			e.add("%s: Architectures is %v, want [!Ref Architecture]", f.ID, v)
		}
		if v := fnProp(in, f.ID, "Handler"); v != "bootstrap" {
			e.add("%s: Handler is %v, want bootstrap", f.ID, v)
		}

		target := "build-" + f.ID
		body, ok := recipe(in.makefile, target)
		if !ok {
			e.add("%s: Makefile has no recipe for %s", f.ID, target)
			continue
		}
		body = expand(body, vars)
		// GOARCH: see checkArchitecture, which runs make for each one.
		for _, need := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=", "-tags lambda.norpc", "-trimpath", "-o $(ARTIFACTS_DIR)/bootstrap"} {
			if !strings.Contains(body, need) {
				e.add("%s: Makefile %s does not contain %q", f.ID, target, need)
			}
		}
		var pkgs []string
		for _, tok := range strings.Fields(body) {
			if strings.HasPrefix(tok, "./functions/") || strings.HasPrefix(tok, "functions/") {
				pkgs = append(pkgs, tok)
			}
		}
		if want := "./functions/" + f.Dir; len(pkgs) != 1 || pkgs[0] != want {
			e.add("%s: Makefile %s builds %v, want exactly %s", f.ID, target, pkgs, want)
		}
	}
	for _, typ := range []string{"AWS::Serverless::Function", "AWS::Lambda::Function"} {
		for _, id := range in.ofType(typ) {
			if !want[id] {
				e.add("%s: function not in the contract", id)
			}
		}
	}
	return e.err()
}

func checkAPI(in *input) error {
	var e errs
	apis := in.ofType("AWS::Serverless::Api")
	if len(apis) != 1 {
		return fmt.Errorf("want exactly one AWS::Serverless::Api, got %v", apis)
	}
	api := apis[0]
	auth := getMap(props(in, api), "Auth")
	if auth["DefaultAuthorizer"] != "AWS_IAM" {
		e.add("%s: Auth.DefaultAuthorizer is %v, want AWS_IAM", api, auth["DefaultAuthorizer"])
	}
	// NONE: API Gateway invokes through the functions' resource policies; the
	// SAM default passes the caller's credentials through instead, which
	// would also require lambda:InvokeFunction of every caller.
	if auth["InvokeRole"] != "NONE" {
		e.add("%s: Auth.InvokeRole is %v, want NONE", api, auth["InvokeRole"])
	}
	throttled := false
	settings, _ := props(in, api)["MethodSettings"].([]any)
	for _, s := range settings {
		sm, _ := s.(map[string]any)
		rate, okR := in.number(sm["ThrottlingRateLimit"])
		burst, okB := in.number(sm["ThrottlingBurstLimit"])
		if sm["ResourcePath"] == "/*" && sm["HttpMethod"] == "*" && okR && okB {
			throttled = true
			if rate <= 0 || rate > 30 {
				e.add("%s: ThrottlingRateLimit %v outside (0, 30] (WeChat allows about 30/s)", api, rate)
			}
			if burst <= 0 {
				e.add("%s: ThrottlingBurstLimit %v must be positive", api, burst)
			}
		}
	}
	if !throttled {
		e.add("%s: no stage-wide throttling (MethodSettings /* * with rate and burst limits)", api)
	}
	if ids := in.ofType("AWS::Serverless::HttpApi"); len(ids) > 0 {
		e.add("HTTP APIs %v: only the IAM-authorised REST API may front the functions", ids)
	}
	if _, ok := globalsFn(in)["FunctionUrlConfig"]; ok {
		e.add("Globals: FunctionUrlConfig would expose the functions outside the API")
	}
	for _, f := range contract {
		if _, ok := props(in, f.ID)["FunctionUrlConfig"]; ok {
			e.add("%s: FunctionUrlConfig would expose the function outside the API", f.ID)
		}
		for name, ev := range events(in, f.ID) {
			evm, _ := ev.(map[string]any)
			typ := evm["Type"]
			// The scheduled functions: their schedule only
			// (checkReconciler, checkCampaigns); the campaigns function
			// also its bucket's S3 event (checkCampaigns).
			allowed := []any{"Api", "SQS"}
			if len(f.Routes) == 0 {
				allowed = nil
			}
			if f.Schedule {
				allowed = append(allowed, "Schedule")
			}
			if f.ID == campaignsID {
				allowed = append(allowed, "S3")
			}
			if !slices.Contains(allowed, typ) {
				e.add("%s: event %s has type %v; only %v are allowed (Api on %s)", f.ID, name, typ, allowed, api)
				continue
			}
			if typ != "Api" {
				continue
			}
			p := getMap(evm, "Properties")
			if !isRef(p["RestApiId"], api) {
				e.add("%s: event %s has RestApiId %v, want !Ref %s", f.ID, name, p["RestApiId"], api)
			}
			if a, ok := p["Auth"]; ok {
				e.add("%s: event %s overrides Auth (%v); every route uses the API's AWS_IAM default", f.ID, name, a)
			}
		}
	}
	return e.err()
}

func checkRoutes(in *input) error {
	type route struct{ fn, method, path string }
	var got, want []route
	for _, f := range contract {
		for _, r := range f.Routes {
			method, path, _ := strings.Cut(r, " ")
			want = append(want, route{f.ID, method, path})
		}
	}
	for _, id := range in.ofType("AWS::Serverless::Function") {
		for _, ev := range events(in, id) {
			evm, _ := ev.(map[string]any)
			if evm["Type"] != "Api" && evm["Type"] != "HttpApi" {
				continue
			}
			p := getMap(evm, "Properties")
			m, _ := p["Method"].(string)
			path, _ := p["Path"].(string)
			got = append(got, route{id, strings.ToUpper(m), path})
		}
	}
	less := func(a, b route) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) }
	slices.SortFunc(got, less)
	slices.SortFunc(want, less)
	if !slices.Equal(got, want) {
		return fmt.Errorf("routes %v, want %v", got, want)
	}
	return nil
}

type roleStmt struct {
	body map[string]any
	cond string // the Fn::If condition the statement sits under, if any
}

// roleStatements lists a role's inline policy statements, each with the
// Fn::If condition it sits under: its own, or its whole policy's (a policy
// in the list may be !If [<cond>, <policy>, !Ref AWS::NoValue]).
func roleStatements(roleProps map[string]any) []roleStmt {
	var out []roleStmt
	var add func(p any, policyCond string)
	add = func(p any, policyCond string) {
		pm, _ := p.(map[string]any)
		if ifv, ok := fnIf(pm); ok {
			cond, _ := ifv[0].(string)
			for _, branch := range ifv[1:] {
				if !isNoValue(branch) {
					add(branch, cond)
				}
			}
			return
		}
		doc := getMap(pm, "PolicyDocument")
		sts, ok := doc["Statement"].([]any)
		if !ok {
			sts = []any{doc["Statement"]}
		}
		for _, st := range sts {
			m, _ := st.(map[string]any)
			if ifv, ok := m["Fn::If"].([]any); ok && len(ifv) == 3 {
				cond, _ := ifv[0].(string)
				for _, branch := range ifv[1:] {
					if bm, ok := branch.(map[string]any); ok && !isNoValue(bm) {
						out = append(out, roleStmt{bm, cond})
					}
				}
				continue
			}
			out = append(out, roleStmt{m, policyCond})
		}
	}
	pols, _ := roleProps["Policies"].([]any)
	for _, p := range pols {
		add(p, "")
	}
	return out
}

// condRefs lists the Refs of a condition, following the conditions it
// names.
func condRefs(conds map[string]any, name string) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if c, ok := x["Condition"].(string); ok && len(x) == 1 {
				if !seen[c] {
					seen[c] = true
					walk(conds[c])
				}
				return
			}
			if r, ok := ref(x); ok {
				out = append(out, r)
				return
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	seen[name] = true
	walk(conds[name])
	return out
}

// What Lambda needs of a function's role to place the function in subnets:
// AWSLambdaVPCAccessExecutionRole's EC2 actions. The network interface
// actions are granted on this account's interfaces, subnets and security
// groups in the region; the two Describe actions on "*", the only resource
// EC2 authorises them on.
var (
	eniActions      = []string{"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
	describeActions = []string{"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}
	eniResources    = []string{
		"arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*",
		"arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:subnet/*",
		"arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*",
	}
)

// isENIResource reports whether res is exactly the Subs of eniResources.
func isENIResource(res any) bool {
	l, ok := res.([]any)
	if !ok || len(l) != len(eniResources) {
		return false
	}
	var got []string
	for _, r := range l {
		m, _ := r.(map[string]any)
		s, ok := m["Fn::Sub"].(string)
		if !ok || len(m) != 1 {
			return false
		}
		got = append(got, s)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(eniResources))
	return slices.Equal(got, want)
}

func checkRoles(in *input) error {
	var e errs
	table, _ := ledgerTable(in)
	conds := getMap(in.tpl, "Conditions")
	kmsCond := func(c string) bool {
		return c != "" && slices.Contains(refsIn(conds[c]), "KmsKeyArn")
	}
	egressCond := func(c string) bool {
		return c != "" && slices.Contains(condRefs(conds, c), "EgressMode")
	}
	for _, f := range contract {
		p := props(in, f.ID)
		if _, ok := p["Policies"]; ok {
			e.add("%s: Policies makes SAM generate a role with managed policies; grant through the explicit role", f.ID)
		}
		roleID, ok := getAtt(fnProp(in, f.ID, "Role"), "Arn")
		if !ok || resource(in, roleID)["Type"] != "AWS::IAM::Role" {
			e.add("%s: Role must be !GetAtt <an AWS::IAM::Role of this template>.Arn, got %v", f.ID, fnProp(in, f.ID, "Role"))
			continue
		}
		rp := props(in, roleID)
		if v, ok := rp["ManagedPolicyArns"]; ok {
			e.add("%s: managed policies %v (AWS managed policies grant on *)", roleID, v)
		}
		trust, _ := getMap(rp, "AssumeRolePolicyDocument")["Statement"].([]any)
		if len(trust) == 0 {
			e.add("%s: no trust policy", roleID)
		}
		for _, st := range trust {
			sm, _ := st.(map[string]any)
			if !reflect.DeepEqual(sm["Principal"], map[string]any{"Service": "lambda.amazonaws.com"}) || sm["Action"] != "sts:AssumeRole" {
				e.add("%s: must be assumable by lambda.amazonaws.com only, got %v", roleID, sm)
			}
		}
		logGroup, _ := ref(getMap(p, "LoggingConfig")["LogGroup"])
		queue := ""
		for _, ev := range events(in, f.ID) {
			evm, _ := ev.(map[string]any)
			if evm["Type"] == "SQS" {
				queue, _ = getAtt(getMap(evm, "Properties")["Queue"], "Arn")
			}
		}
		hasSecret := false
		var ledgerActions, campaignActions, s3Actions []string
		indexActions := map[string][]string{}
		for _, st := range roleStatements(rp) {
			b := st.body
			for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
				if _, ok := b[k]; ok {
					e.add("%s: statement uses %s: %v", roleID, k, b)
				}
			}
			if b["Effect"] != "Allow" {
				e.add("%s: statement effect %v: %v", roleID, b["Effect"], b)
			}
			res := b["Resource"]
			// The wildcards allowed: the ledger's index ARN
			// (${Table.Arn}/index/*) in the ledger statement's resource,
			// the campaign bucket's incoming/* and reports/*, the network
			// interface ARNs and EC2's Describe actions' "*". A function
			// with actions on a ledger index has its item actions on the
			// table alone.
			onLedger := table != "" && isLedgerResource(res, table)
			if len(f.Indexes) > 0 {
				t, ok := getAtt(res, "Arn")
				onLedger = ok && t == table
			}
			onIndex := ""
			for _, idx := range []string{ledger.DueIndex, campaignIndex} {
				if table != "" && isIndexResource(res, table, idx) {
					onIndex = idx
				}
			}
			onCampaignTable := false
			if t, ok := getAtt(res, "Arn"); ok && t == campaignTableID {
				onCampaignTable = true
			}
			bucketPrefix, onBucket := campaignBucketObjects(in, res)
			onBucketItself := isCampaignBucket(in, res)
			onENIs := isENIResource(res)
			onAny := res == "*"
			checked := stringsIn(b["Action"])
			if !onLedger && !onENIs && !onAny && !onBucket {
				checked = append(checked, stringsIn(res)...)
			}
			for _, s := range checked {
				if strings.Contains(s, "*") {
					e.add("%s: wildcard %q in %v", roleID, s, b)
				}
			}
			var actions []string
			switch a := b["Action"].(type) {
			case string:
				actions = []string{a}
			case []any:
				for _, x := range a {
					s, _ := x.(string)
					actions = append(actions, s)
				}
			}
			var allowed []string
			switch {
			case onLedger:
				allowed = f.Ledger
				ledgerActions = append(ledgerActions, actions...)
			case onIndex != "":
				allowed = f.Indexes[onIndex]
				indexActions[onIndex] = append(indexActions[onIndex], actions...)
			case onCampaignTable:
				allowed = f.Campaign
				campaignActions = append(campaignActions, actions...)
			case onBucket && f.Bucket:
				// Read the files, write the reports: nothing else, nowhere
				// else in the bucket.
				switch bucketPrefix {
				case campaignPrefix:
					allowed = []string{"s3:GetObject"}
				case reportsPrefix:
					allowed = []string{"s3:PutObject"}
				}
				for _, a := range actions {
					s3Actions = append(s3Actions, a+" "+bucketPrefix)
				}
			case onBucketItself && f.ListIncoming:
				// List incoming/ and nothing else of the bucket: only
				// s3:ListBucket, only under StringLike s3:prefix
				// incoming/*.
				allowed = []string{"s3:ListBucket"}
				listed, ok := listPrefix(b["Condition"])
				if !ok || listed != campaignPrefix {
					e.add("%s: s3:ListBucket on %s with Condition %v, want exactly StringLike s3:prefix %s*", roleID, campaignBucketID, b["Condition"], campaignPrefix)
				}
				for _, a := range actions {
					s3Actions = append(s3Actions, a+" "+listed)
				}
			case isRef(res, "WxpaySecretArn"):
				allowed = []string{"secretsmanager:GetSecretValue"}
				hasSecret = true
			case isRef(res, "KmsKeyArn"):
				// The secret's key through Secrets Manager; for a function
				// of the bucket, also the bucket's key through S3.
				via, _ := getMap(getMap(getMap(b, "Condition"), "StringEquals"), "kms:ViaService")["Fn::Sub"].(string)
				switch {
				case via == "secretsmanager.${AWS::Region}.${AWS::URLSuffix}":
					allowed = []string{"kms:Decrypt"}
				case via == "s3.${AWS::Region}.${AWS::URLSuffix}" && f.Bucket:
					allowed = []string{"kms:Decrypt", "kms:GenerateDataKey"}
				default:
					e.add("%s: KMS statement %v: want Condition StringEquals kms:ViaService !Sub secretsmanager.${AWS::Region}.${AWS::URLSuffix}%s", roleID, b,
						map[bool]string{true: " or s3.${AWS::Region}.${AWS::URLSuffix}"}[f.Bucket])
				}
				if !kmsCond(st.cond) {
					e.add("%s: kms statement must sit under !If on a condition testing KmsKeyArn (cond %q)", roleID, st.cond)
				}
			case onENIs, onAny:
				// Only in the VPC modes (checkEgress resolves the condition
				// for each mode).
				allowed = eniActions
				if onAny {
					allowed = describeActions
				}
				if !egressCond(st.cond) {
					e.add("%s: %v must sit under !If on a condition testing EgressMode (cond %q)", roleID, b["Action"], st.cond)
				}
			default:
				if r, ok := getAtt(res, "Arn"); ok && r == logGroup && logGroup != "" {
					allowed = []string{"logs:CreateLogStream", "logs:PutLogEvents"}
				} else if ok && r == queue && queue != "" {
					allowed = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
				} else {
					want := fmt.Sprintf("exactly [!GetAtt %s.Arn, !Sub '${%s.Arn}/index/*']", table, table)
					if len(f.Indexes) > 0 {
						want = fmt.Sprintf("!GetAtt %s.Arn or !Sub '${%s.Arn}/index/<%v>'", table, table, slices.Sorted(maps.Keys(f.Indexes)))
					}
					e.add("%s: resource %v is not the secret, its KMS key, %s's log group, %s's queue, %s or %s, or (campaign functions) %s's incoming/* or reports/*, or (%s) %s itself",
						roleID, res, f.ID, f.ID, want, campaignTableID, campaignBucketID, campaignsID, campaignBucketID)
					continue
				}
			}
			if len(actions) == 0 {
				e.add("%s: statement without actions: %v", roleID, b)
			}
			for _, a := range actions {
				if !slices.Contains(allowed, a) {
					e.add("%s: action %q not allowed on %v", roleID, a, res)
				}
			}
		}
		if !hasSecret {
			e.add("%s: no secretsmanager:GetSecretValue on !Ref WxpaySecretArn", roleID)
		}
		// Exactly the function's item actions: none missing (the function
		// would answer LEDGER_UNAVAILABLE) and none more.
		exactly := func(what string, got, want []string) {
			got, want = slices.Clone(got), slices.Clone(want)
			slices.Sort(got)
			slices.Sort(want)
			if got = slices.Compact(got); !slices.Equal(got, want) {
				e.add("%s: %s %v, want exactly %v", roleID, what, got, want)
			}
		}
		exactly("ledger actions on the ledger table", ledgerActions, f.Ledger)
		for _, idx := range []string{ledger.DueIndex, campaignIndex} {
			exactly("actions on the ledger's index "+idx, indexActions[idx], f.Indexes[idx])
		}
		exactly("actions on "+campaignTableID, campaignActions, f.Campaign)
		var wantS3 []string
		if f.Bucket {
			wantS3 = []string{"s3:GetObject " + campaignPrefix, "s3:PutObject " + reportsPrefix}
		}
		if f.ListIncoming {
			wantS3 = append(wantS3, "s3:ListBucket "+campaignPrefix)
		}
		exactly("actions on "+campaignBucketID, s3Actions, wantS3)
	}
	if d := getMap(getMap(in.tpl, "Parameters"), "KmsKeyArn")["Default"]; d != "" {
		e.add("parameter KmsKeyArn: Default is %v, want '' (optional)", d)
	}
	return e.err()
}

func checkQueues(in *input) error {
	var e errs
	owner := map[string]string{}
	for _, f := range contract {
		timeout, ok := in.number(fnProp(in, f.ID, "Timeout"))
		if !ok {
			timeout = 3 // Lambda's default
		}
		var sqs []map[string]any
		for _, ev := range events(in, f.ID) {
			if evm, _ := ev.(map[string]any); evm["Type"] == "SQS" {
				sqs = append(sqs, getMap(evm, "Properties"))
			}
		}
		if !f.Queue {
			if len(sqs) > 0 {
				e.add("%s: has an SQS event; the contract feeds only the send functions from queues", f.ID)
			}
			continue
		}
		if len(sqs) != 1 {
			e.add("%s: want exactly one SQS event, got %d", f.ID, len(sqs))
			continue
		}
		ev := sqs[0]
		q, ok := getAtt(ev["Queue"], "Arn")
		if !ok || resource(in, q)["Type"] != "AWS::SQS::Queue" {
			e.add("%s: SQS event Queue must be !GetAtt <an AWS::SQS::Queue of this template>.Arn, got %v", f.ID, ev["Queue"])
			continue
		}
		if other, dup := owner[q]; dup {
			e.add("%s: queue %s already feeds %s (request shapes differ per function)", f.ID, q, other)
		}
		owner[q] = f.ID
		if rt, _ := ev["FunctionResponseTypes"].([]any); !slices.Contains(rt, any("ReportBatchItemFailures")) {
			e.add("%s: SQS event lacks FunctionResponseTypes [ReportBatchItemFailures]", f.ID)
		}
		if n, ok := in.number(ev["BatchSize"]); !ok || n < 1 || n > 10 {
			e.add("%s: SQS BatchSize %v, want 1..10", f.ID, ev["BatchSize"])
		}
		if w, ok := in.number(ev["MaximumBatchingWindowInSeconds"]); ok && w > 5 {
			e.add("%s: MaximumBatchingWindowInSeconds %v delays payments; keep it small", f.ID, w)
		}
		if n, ok := in.number(getMap(ev, "ScalingConfig")["MaximumConcurrency"]); !ok || n < 2 {
			e.add("%s: SQS ScalingConfig.MaximumConcurrency %v, want >= 2", f.ID, getMap(ev, "ScalingConfig")["MaximumConcurrency"])
		}

		qp := props(in, q)
		vis, ok := in.number(qp["VisibilityTimeout"])
		if !ok {
			vis = 30 // SQS default
		}
		if vis <= timeout {
			e.add("%s: VisibilityTimeout %v must exceed %s's timeout %v", q, vis, f.ID, timeout)
		} else if vis < 6*timeout {
			e.add("%s: VisibilityTimeout %v below 6x %s's timeout %v (AWS guidance for SQS event sources)", q, vis, f.ID, timeout)
		}
		rp := getMap(qp, "RedrivePolicy")
		dlq, ok := getAtt(rp["deadLetterTargetArn"], "Arn")
		if !ok || resource(in, dlq)["Type"] != "AWS::SQS::Queue" || dlq == q {
			e.add("%s: RedrivePolicy.deadLetterTargetArn must be !GetAtt <another queue of this template>.Arn, got %v", q, rp["deadLetterTargetArn"])
			continue
		}
		if _, ok := props(in, dlq)["RedrivePolicy"]; ok {
			e.add("%s: the dead-letter queue must not redrive further", dlq)
		}
		if n, ok := in.number(rp["maxReceiveCount"]); !ok || n < 2 {
			e.add("%s: maxReceiveCount %v, want >= 2 so a transient failure is retried", q, rp["maxReceiveCount"])
		}
		srcRet, ok := in.number(qp["MessageRetentionPeriod"])
		if !ok {
			srcRet = 345600
		}
		dlqRet, ok := in.number(props(in, dlq)["MessageRetentionPeriod"])
		if !ok {
			dlqRet = 345600
		}
		// A standard queue's message keeps its first enqueue time in the
		// dead-letter queue, so a shorter retention there loses messages.
		if dlqRet <= srcRet {
			e.add("%s: MessageRetentionPeriod %v must exceed its source %s's %v", dlq, dlqRet, q, srcRet)
		}
	}
	return e.err()
}

func checkRuntimeConfig(in *input) error {
	var e errs
	lc := getMap(globalsFn(in), "LoggingConfig")
	if lc["LogFormat"] != "JSON" {
		e.add("Globals: LoggingConfig.LogFormat %v, want JSON", lc["LogFormat"])
	}
	if !isRef(lc["ApplicationLogLevel"], "LogLevel") {
		e.add("Globals: LoggingConfig.ApplicationLogLevel %v, want !Ref LogLevel", lc["ApplicationLogLevel"])
	}
	params := getMap(in.tpl, "Parameters")
	if av := getMap(params, "LogLevel")["AllowedValues"]; !reflect.DeepEqual(av, []any{"DEBUG", "INFO", "WARN", "ERROR"}) {
		e.add("parameter LogLevel: AllowedValues %v, want [DEBUG INFO WARN ERROR]", av)
	}
	rc := globalsFn(in)["ReservedConcurrentExecutions"]
	if ifv, ok := fnIf(rc); !ok || !isRef(ifv[1], "ReservedConcurrency") || !isNoValue(ifv[2]) {
		e.add("Globals: ReservedConcurrentExecutions %v, want !If [<cond>, !Ref ReservedConcurrency, !Ref AWS::NoValue]", rc)
	}
	for _, f := range contract {
		t, ok := in.number(fnProp(in, f.ID, "Timeout"))
		switch {
		case f.Timeout != 0:
			// The reconciler: a pass has a minute, the default schedule's
			// interval. The campaign runner: Lambda's longest, 15 minutes
			// of sending under one lease.
			if !ok || t != f.Timeout {
				e.add("%s: Timeout %v, want %v s", f.ID, fnProp(in, f.ID, "Timeout"), f.Timeout)
			}
		case !ok || t >= apiGatewayTimeout:
			e.add("%s: Timeout %v, want below API Gateway's %d s integration timeout", f.ID, fnProp(in, f.ID, "Timeout"), apiGatewayTimeout)
		}
		if f.MemorySize != 0 {
			if m, ok := in.number(fnProp(in, f.ID, "MemorySize")); !ok || m != f.MemorySize {
				e.add("%s: MemorySize %v, want %v", f.ID, fnProp(in, f.ID, "MemorySize"), f.MemorySize)
			}
		}
		env := fnEnv(in, f.ID)
		// The campaigns' variables: exactly the function's, each the
		// table, the bucket or the parameter it names.
		for k, target := range campaignEnv {
			v, has := env[k]
			switch {
			case !slices.Contains(f.Env, k):
				if has {
					e.add("%s: %s %v set; the function has no use for it", f.ID, k, v)
				}
			case k == "WXPAY_CAMPAIGN_BUCKET":
				name, vars, ok := bucketNameSub(in)
				derived := ok && reflect.DeepEqual(v, map[string]any{"Fn::Sub": []any{name, vars}})
				if !isRef(v, target) && !derived {
					e.add("%s: %s %v, want !Ref %s or the bucket's own BucketName", f.ID, k, v, target)
				}
			case !isRef(v, target):
				e.add("%s: %s %v, want !Ref %s", f.ID, k, v, target)
			}
		}
		if !isRef(env["WXPAY_SECRET_ID"], "WxpaySecretArn") {
			e.add("%s: WXPAY_SECRET_ID %v, want !Ref WxpaySecretArn", f.ID, env["WXPAY_SECRET_ID"])
		}
		if !isRef(env["LOG_LEVEL"], "LogLevel") {
			e.add("%s: LOG_LEVEL %v, want !Ref LogLevel", f.ID, env["LOG_LEVEL"])
		}
		// Unset by default: the code then uses WeChat's production and
		// backup domains.
		for _, k := range []string{"WXPAY_BASE_URL", "WXPAY_BACKUP_BASE_URL"} {
			v, ok := env[k]
			if !ok {
				continue
			}
			ifv, isIf := fnIf(v)
			if !isNoValue(v) && (!isIf || !isNoValue(ifv[2])) {
				e.add("%s: %s %v must be unset by default (!If [<cond>, <value>, !Ref AWS::NoValue])", f.ID, k, v)
			}
		}
		// Declared for sam local --env-vars only; never deployed.
		if table, err := ledgerTable(in); err != nil || !isRef(env["WXPAY_LEDGER_TABLE"], table) {
			e.add("%s: WXPAY_LEDGER_TABLE %v, want !Ref <the ledger table>", f.ID, env["WXPAY_LEDGER_TABLE"])
		}
		for _, k := range []string{"AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "SSL_CERT_FILE"} {
			if v, ok := env[k]; ok && !isNoValue(v) {
				e.add("%s: %s is %v; it may only be declared as !Ref AWS::NoValue", f.ID, k, v)
			}
		}
		for k := range env {
			if slices.Contains([]string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}, k) {
				e.add("%s: %s is reserved by Lambda", f.ID, k)
			}
		}
	}
	return e.err()
}

func checkOutputs(in *input) error {
	var e errs
	out := getMap(in.tpl, "Outputs")
	apis := in.ofType("AWS::Serverless::Api")
	if len(apis) == 1 {
		api := apis[0]
		stage, _ := props(in, api)["StageName"].(string)
		sub, _ := getMap(getMap(out, "ApiUrl"), "Value")["Fn::Sub"].(string)
		wantURL := fmt.Sprintf("https://${%s}.execute-api.${AWS::Region}.${AWS::URLSuffix}/%s/", api, stage)
		if sub != wantURL {
			e.add("output ApiUrl: %q, want !Sub %q", sub, wantURL)
		}
	}
	wantRefs := map[string]string{}
	if table, err := ledgerTable(in); err == nil {
		wantRefs["LedgerTableName"] = table
	} else {
		e.add("%v", err)
	}
	wantRefs["CampaignTableName"] = campaignTableID
	wantRefs["CampaignBucketName"] = campaignBucketID
	if len(apis) == 1 {
		stage, _ := props(in, apis[0])["StageName"].(string)
		sub, _ := getMap(getMap(out, "CampaignsApiUrl"), "Value")["Fn::Sub"].(string)
		if want := fmt.Sprintf("https://${%s}.execute-api.${AWS::Region}.${AWS::URLSuffix}/%s/campaigns", apis[0], stage); sub != want {
			e.add("output CampaignsApiUrl: %q, want !Sub %q", sub, want)
		}
	}
	for _, f := range contract {
		wantRefs[f.ID+"Name"] = f.ID
		if f.Queue {
			for _, ev := range events(in, f.ID) {
				evm, _ := ev.(map[string]any)
				if evm["Type"] != "SQS" {
					continue
				}
				q, _ := getAtt(getMap(evm, "Properties")["Queue"], "Arn")
				wantRefs[q+"Url"] = q
				dlq, _ := getAtt(getMap(props(in, q), "RedrivePolicy")["deadLetterTargetArn"], "Arn")
				wantRefs["DeadLetterQueueUrl"] = dlq
			}
		}
	}
	if ids := in.ofType("AWS::CloudWatch::Dashboard"); len(ids) == 1 {
		wantRefs["DashboardName"] = ids[0]
		if err := checkDashboardURL(in, getMap(out, "DashboardUrl")["Value"], ids[0]); err != nil {
			e.add("output DashboardUrl: %w", err)
		}
	} else {
		e.add("want one AWS::CloudWatch::Dashboard, got %v", ids)
	}
	for name, target := range wantRefs {
		if v := getMap(out, name)["Value"]; !isRef(v, target) {
			e.add("output %s: %v, want !Ref %s", name, v, target)
		}
	}
	return e.err()
}

// consoleDomains is the AWS console's domain per partition.
var consoleDomains = map[string]string{"aws": "console.aws.amazon.com", "aws-cn": "console.amazonaws.cn"}

// checkDashboardURL: the dashboard's URL on the console of the stack's
// partition: !If [<AWS::Partition is aws-cn>, <China console>, <global
// console>].
func checkDashboardURL(in *input, v any, dashboard string) error {
	ifv, ok := fnIf(v)
	if !ok {
		return fmt.Errorf("%v, want !If [<AWS::Partition is aws-cn>, !Sub <China console URL>, !Sub <global console URL>]", v)
	}
	cond, _ := ifv[0].(string)
	eq, _ := getMap(getMap(in.tpl, "Conditions"), cond)["Fn::Equals"].([]any)
	isChina := len(eq) == 2 && ((isRef(eq[0], "AWS::Partition") && eq[1] == "aws-cn") || (isRef(eq[1], "AWS::Partition") && eq[0] == "aws-cn"))
	if !isChina {
		return fmt.Errorf("condition %s is %v, want !Equals [!Ref AWS::Partition, aws-cn]", cond, getMap(getMap(in.tpl, "Conditions"), cond))
	}
	var e errs
	for i, partition := range []string{"aws-cn", "aws"} {
		want := "https://" + consoleDomains[partition] + "/cloudwatch/home?region=${AWS::Region}#dashboards:name=${" + dashboard + "}"
		if sub, _ := getMap(map[string]any{"v": ifv[1+i]}, "v")["Fn::Sub"].(string); sub != want {
			e.add("%s: %v, want !Sub %q", partition, ifv[1+i], want)
		}
	}
	return e.err()
}

// SAM-reserved variables that sam local takes from the shell or profile.
// They may be listed in env/local.json for tools that read it, but SAM CLI
// ignores them there.
var samCLIVars = []string{"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

func checkLocalEnv(in *input) error {
	var e errs
	known := map[string]bool{}
	tables, campaignTables := map[string][]string{}, map[string][]string{}
	for _, f := range contract {
		known[f.ID] = true
		vars, ok := in.localEnv[f.ID].(map[string]any)
		if !ok {
			e.add("env/local.json: no overrides for %s", f.ID)
			continue
		}
		env := fnEnv(in, f.ID)
		for k, v := range vars {
			if _, isStr := v.(string); !isStr {
				e.add("env/local.json: %s.%s is %T, want a string", f.ID, k, v)
			}
			if _, declared := env[k]; !declared && !slices.Contains(samCLIVars, k) {
				e.add("env/local.json: %s.%s is not declared in the template, so sam local ignores it", f.ID, k)
			}
		}
		for _, k := range []string{"WXPAY_SECRET_ID", "WXPAY_BASE_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "SSL_CERT_FILE", "WXPAY_LEDGER_TABLE", "AWS_ENDPOINT_URL_DYNAMODB"} {
			if s, _ := vars[k].(string); s == "" {
				e.add("env/local.json: %s.%s must be set for sam local (the simulator and the local DynamoDB)", f.ID, k)
			}
		}
		if s, _ := vars["WXPAY_LEDGER_TABLE"].(string); s != "" {
			tables[s] = append(tables[s], f.ID)
		}
		// The campaigns' table and bucket, where the function has them:
		// sam local would otherwise pass the logical id as the name.
		for _, k := range []string{"WXPAY_CAMPAIGN_TABLE", "WXPAY_CAMPAIGN_BUCKET"} {
			s, _ := vars[k].(string)
			if slices.Contains(f.Env, k) && s == "" {
				e.add("env/local.json: %s.%s must be set for sam local", f.ID, k)
			}
			if s != "" {
				campaignTables[k+" "+s] = append(campaignTables[k+" "+s], f.ID)
			}
		}
	}
	// One ledger: a replay or a query must see what any function recorded.
	if len(tables) > 1 {
		e.add("env/local.json: the functions name different ledger tables %v", tables)
	}
	// One campaign table and bucket: the sends and the campaigns share the
	// pacing window.
	if len(campaignTables) > 2 {
		e.add("env/local.json: the functions name different campaign tables or buckets %v", campaignTables)
	}
	for k := range in.localEnv {
		if !known[k] && k != "Parameters" {
			e.add("env/local.json: %s is not a function of the template", k)
		}
	}
	return e.err()
}

// ledgerTableID is the ledger's logical id.
const ledgerTableID = "LedgerTable"

// ledgerTable is the ledger, LedgerTable, when the template's tables are
// exactly it and CampaignTable.
func ledgerTable(in *input) (string, error) {
	ids := in.ofType("AWS::DynamoDB::Table")
	if want := []string{campaignTableID, ledgerTableID}; !slices.Equal(ids, want) {
		return "", fmt.Errorf("AWS::DynamoDB::Table resources %v, want exactly %v (the ledger and the campaigns)", ids, want)
	}
	return ledgerTableID, nil
}

// isLedgerResource reports whether res is exactly the table and its
// indexes: [!GetAtt <table>.Arn, !Sub '${<table>.Arn}/index/*'], in either
// order. The ARNs come from the table, so they carry its partition.
func isLedgerResource(res any, table string) bool {
	l, ok := res.([]any)
	if !ok || len(l) != 2 {
		return false
	}
	arn, index := 0, 0
	for _, r := range l {
		if t, ok := getAtt(r, "Arn"); ok && t == table {
			arn++
		}
		if m, ok := r.(map[string]any); ok && len(m) == 1 && m["Fn::Sub"] == "${"+table+".Arn}/index/*" {
			index++
		}
	}
	return arn == 1 && index == 1
}

// isIndexResource reports whether res is exactly the ledger's index idx:
// !Sub '${<table>.Arn}/index/<idx>', alone or as a list of one.
func isIndexResource(res any, table, idx string) bool {
	if l, ok := res.([]any); ok && len(l) == 1 {
		res = l[0]
	}
	m, ok := res.(map[string]any)
	return ok && len(m) == 1 && m["Fn::Sub"] == "${"+table+".Arn}/index/"+idx
}

// campaignBucketObjects reports whether res is exactly the objects under
// one prefix of CampaignBucket, and which prefix ("incoming/"): either
// !Sub '${CampaignBucket.Arn}/<prefix>*', or, where a reference to the
// bucket would close a circle (the function its notification invokes),
// !Sub ['arn:${AWS::Partition}:s3:::<the bucket's BucketName>/<prefix>*',
// <the BucketName's variables>].
func campaignBucketObjects(in *input, res any) (string, bool) {
	if l, ok := res.([]any); ok && len(l) == 1 {
		res = l[0]
	}
	m, ok := res.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	var objects string
	switch sub := m["Fn::Sub"].(type) {
	case string:
		objects, ok = strings.CutPrefix(sub, "${"+campaignBucketID+".Arn}/")
	case []any:
		name, vars, isSub := bucketNameSub(in)
		if !isSub || len(sub) != 2 || !reflect.DeepEqual(sub[1], vars) {
			return "", false
		}
		s, _ := sub[0].(string)
		objects, ok = strings.CutPrefix(s, "arn:${AWS::Partition}:s3:::"+name+"/")
	default:
		return "", false
	}
	prefix, isAll := strings.CutSuffix(objects, "*")
	if !ok || !isAll || !strings.HasSuffix(prefix, "/") || strings.ContainsAny(prefix, "*?$") {
		return "", false
	}
	return prefix, true
}

// isCampaignBucket reports whether res is exactly CampaignBucket itself,
// not its objects: !GetAtt CampaignBucket.Arn, or (as in
// campaignBucketObjects) !Sub ['arn:${AWS::Partition}:s3:::<the bucket's
// BucketName>', <the BucketName's variables>].
func isCampaignBucket(in *input, res any) bool {
	if l, ok := res.([]any); ok && len(l) == 1 {
		res = l[0]
	}
	if b, ok := getAtt(res, "Arn"); ok {
		return b == campaignBucketID
	}
	m, ok := res.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	sub, ok := m["Fn::Sub"].([]any)
	name, vars, isSub := bucketNameSub(in)
	return ok && isSub && len(sub) == 2 && sub[0] == "arn:${AWS::Partition}:s3:::"+name && reflect.DeepEqual(sub[1], vars)
}

// listPrefix is the prefix a bucket listing's Condition allows, "incoming/"
// for exactly StringLike s3:prefix incoming/* (one value, nothing else).
func listPrefix(cond any) (string, bool) {
	m, _ := cond.(map[string]any)
	like, _ := m["StringLike"].(map[string]any)
	if len(m) != 1 || len(like) != 1 {
		return "", false
	}
	v := like["s3:prefix"]
	if l, ok := v.([]any); ok && len(l) == 1 {
		v = l[0]
	}
	s, _ := v.(string)
	prefix, ok := strings.CutSuffix(s, "*")
	if !ok || !strings.HasSuffix(prefix, "/") || strings.ContainsAny(prefix, "*?$") {
		return "", false
	}
	return prefix, true
}

// bucketNameSub is CampaignBucket's BucketName, !Sub [name, vars].
func bucketNameSub(in *input) (string, any, bool) {
	l, ok := getMap(props(in, campaignBucketID), "BucketName")["Fn::Sub"].([]any)
	if !ok || len(l) != 2 {
		return "", nil, false
	}
	name, ok := l[0].(string)
	return name, l[1], ok
}

// isTrue reports whether a CloudFormation boolean is true (YAML true, or
// the string "true", which CloudFormation also accepts).
func isTrue(v any) bool { return v == true || v == "true" }

// bannedLedgerGrant reports whether s grants what no function may do to
// either table: delete or batch-write items, any dynamodb wildcard, or a
// managed policy or SAM policy template that includes DeleteItem. (Scan,
// granted on CampaignTable alone, is checked by statement:
// scansOnlyCampaigns.)
func bannedLedgerGrant(s string) bool {
	l := strings.ToLower(s)
	if strings.HasPrefix(l, "dynamodb:") {
		if strings.ContainsAny(l, "*?") {
			return true
		}
		switch strings.TrimPrefix(l, "dynamodb:") {
		case "deleteitem", "batchwriteitem", "partiqldelete", "deletetable":
			return true
		}
	}
	return strings.Contains(l, "dynamodbcrudpolicy") || strings.Contains(l, "amazondynamodbfullaccess")
}

// keysAndStringsIn lists every mapping key and string scalar inside v
// (SAM policy templates such as DynamoDBCrudPolicy are keys).
func keysAndStringsIn(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			for k, c := range x {
				out = append(out, k)
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}

// scansOnlyCampaigns: every statement of every role or policy of the
// template that grants dynamodb:Scan grants it on CampaignTable alone
// (listing campaigns), never on the ledger or its indexes.
func scansOnlyCampaigns(in *input) error {
	var e errs
	for id := range resources(in) {
		var sts []roleStmt
		switch resource(in, id)["Type"] {
		case "AWS::IAM::Role":
			sts = roleStatements(props(in, id))
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy":
			sts = roleStatements(map[string]any{"Policies": []any{props(in, id)}})
		}
		for _, st := range sts {
			scan := slices.ContainsFunc(stringsIn(st.body["Action"]), func(a string) bool { return strings.EqualFold(a, "dynamodb:Scan") })
			if t, ok := getAtt(st.body["Resource"], "Arn"); scan && (!ok || t != campaignTableID) {
				e.add("%s: dynamodb:Scan on %v; only %s may be scanned, never the ledger", id, st.body["Resource"], campaignTableID)
			}
		}
	}
	return e.err()
}

// checkLedgerTable: one DynamoDB table, keyed HASH mch_id, RANGE mch_billno
// (strings), on-demand, with point-in-time recovery, encryption under the
// AWS managed key, deletion protection, kept when the stack is deleted or
// the table replaced, and no TTL: ledger items are never deleted and never
// expire. Nothing in the template may grant deleting or scanning items.
func checkLedgerTable(in *input) error {
	var e errs
	for _, s := range keysAndStringsIn([]any{resources(in), getMap(in.tpl, "Globals")}) {
		if bannedLedgerGrant(s) {
			e.add("%q in the template: no function deletes or batch-writes items", s)
		}
	}
	if err := scansOnlyCampaigns(in); err != nil {
		e.add("%w", err)
	}
	if ids := in.ofType("AWS::Serverless::SimpleTable"); len(ids) > 0 {
		e.add("AWS::Serverless::SimpleTable %v: the ledger is an AWS::DynamoDB::Table", ids)
	}
	table, err := ledgerTable(in)
	if err != nil {
		e.add("%v", err)
		return e.err()
	}
	r := resource(in, table)
	for _, k := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
		if r[k] != "Retain" {
			e.add("%s: %s is %v, want Retain (the ledger is the record of payments)", table, k, r[k])
		}
	}
	p := props(in, table)
	if p["BillingMode"] != "PAY_PER_REQUEST" {
		e.add("%s: BillingMode %v, want PAY_PER_REQUEST (on-demand)", table, p["BillingMode"])
	}
	if v, ok := p["ProvisionedThroughput"]; ok {
		e.add("%s: ProvisionedThroughput %v on an on-demand table", table, v)
	}
	if v := getMap(p, "PointInTimeRecoverySpecification")["PointInTimeRecoveryEnabled"]; !isTrue(v) {
		e.add("%s: PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled %v, want true", table, v)
	}
	sse := getMap(p, "SSESpecification")
	if !isTrue(sse["SSEEnabled"]) {
		e.add("%s: SSESpecification.SSEEnabled %v, want true (KMS encryption)", table, sse["SSEEnabled"])
	}
	if t, ok := sse["SSEType"]; ok && t != "KMS" {
		e.add("%s: SSESpecification.SSEType %v, want KMS", table, t)
	}
	if k, ok := sse["KMSMasterKeyId"]; ok {
		e.add("%s: SSESpecification.KMSMasterKeyId %v: the ledger uses the AWS managed key aws/dynamodb (the roles grant no KMS key for it)", table, k)
	}
	if v := p["DeletionProtectionEnabled"]; !isTrue(v) {
		e.add("%s: DeletionProtectionEnabled %v, want true", table, v)
	}
	if v, ok := p["TimeToLiveSpecification"]; ok {
		e.add("%s: TimeToLiveSpecification %v: ledger items never expire", table, v)
	}
	wantKeys := []any{
		map[string]any{"AttributeName": ledgerHashKey, "KeyType": "HASH"},
		map[string]any{"AttributeName": ledgerRangeKey, "KeyType": "RANGE"},
	}
	if !reflect.DeepEqual(p["KeySchema"], wantKeys) {
		e.add("%s: KeySchema %v, want HASH %s, RANGE %s", table, p["KeySchema"], ledgerHashKey, ledgerRangeKey)
	}
	attrTypes := map[string]any{}
	defs, _ := p["AttributeDefinitions"].([]any)
	for _, d := range defs {
		dm, _ := d.(map[string]any)
		name, _ := dm["AttributeName"].(string)
		if _, dup := attrTypes[name]; dup {
			e.add("%s: attribute %s defined twice", table, name)
		}
		attrTypes[name] = dm["AttributeType"]
	}
	for _, k := range []string{ledgerHashKey, ledgerRangeKey} {
		if attrTypes[k] != "S" {
			e.add("%s: attribute %s has type %v, want S", table, k, attrTypes[k])
		}
	}
	if err := checkTableInput(table, p); err != nil {
		e.add("%w", err)
	}
	return e.err()
}

// checkTableInput compares the template's ledger table (its properties p)
// with ledger.TableInput, the table the code is written for and the tests
// create: the same attributes, key, indexes (name, key, projection, none
// provisioned) and billing.
func checkTableInput(table string, p map[string]any) error {
	var e errs
	want := ledger.TableInput(table)

	wantAttrs := map[string]any{}
	for _, a := range want.AttributeDefinitions {
		wantAttrs[*a.AttributeName] = string(a.AttributeType)
	}
	gotAttrs := map[string]any{}
	defs, _ := p["AttributeDefinitions"].([]any)
	for _, d := range defs {
		dm, _ := d.(map[string]any)
		name, _ := dm["AttributeName"].(string)
		gotAttrs[name] = dm["AttributeType"]
	}
	if !reflect.DeepEqual(gotAttrs, wantAttrs) || len(defs) != len(wantAttrs) {
		e.add("%s: AttributeDefinitions %v, want %v (ledger.TableInput)", table, defs, wantAttrs)
	}

	keySchema := func(v any) []string {
		l, _ := v.([]any)
		var out []string
		for _, k := range l {
			km, _ := k.(map[string]any)
			out = append(out, fmt.Sprint(km["AttributeName"], " ", km["KeyType"]))
		}
		return out
	}
	wantKey := func(ks []types.KeySchemaElement) []string {
		var out []string
		for _, k := range ks {
			out = append(out, *k.AttributeName+" "+string(k.KeyType))
		}
		return out
	}
	if got, w := keySchema(p["KeySchema"]), wantKey(want.KeySchema); !slices.Equal(got, w) {
		e.add("%s: KeySchema %v, want %v (ledger.TableInput)", table, got, w)
	}

	type index struct {
		key        []string
		projection string
		nonKey     []string
	}
	wantIdx := map[string]index{}
	for _, g := range want.GlobalSecondaryIndexes {
		wantIdx[*g.IndexName] = index{wantKey(g.KeySchema), string(g.Projection.ProjectionType), g.Projection.NonKeyAttributes}
	}
	gotIdx := map[string]index{}
	gsis, _ := p["GlobalSecondaryIndexes"].([]any)
	for _, g := range gsis {
		gm, _ := g.(map[string]any)
		name, _ := gm["IndexName"].(string)
		proj := getMap(gm, "Projection")
		pt, _ := proj["ProjectionType"].(string)
		gotIdx[name] = index{keySchema(gm["KeySchema"]), pt, stringsIn(proj["NonKeyAttributes"])}
		if v, ok := gm["ProvisionedThroughput"]; ok {
			e.add("%s: index %s has ProvisionedThroughput %v on an on-demand table", table, name, v)
		}
	}
	if !reflect.DeepEqual(gotIdx, wantIdx) || len(gsis) != len(wantIdx) {
		e.add("%s: GlobalSecondaryIndexes %v, want %v (ledger.TableInput: the reconciler's index %s)", table, gotIdx, wantIdx, ledger.DueIndex)
	}
	if v, ok := p["LocalSecondaryIndexes"]; ok && len(want.LocalSecondaryIndexes) == 0 {
		e.add("%s: LocalSecondaryIndexes %v, want none (ledger.TableInput)", table, v)
	}
	if b := p["BillingMode"]; b != string(want.BillingMode) {
		e.add("%s: BillingMode %v, want %s (ledger.TableInput)", table, b, want.BillingMode)
	}
	return e.err()
}

// TestLedgerTableMatchesTableInput: the template's ledger table is the
// one internal/ledger creates in tests (ledger.TableInput): its key, its
// attributes and the reconciler's index due.
func TestLedgerTableMatchesTableInput(t *testing.T) {
	in := load(t)
	table, err := ledgerTable(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkTableInput(table, props(in, table)); err != nil {
		t.Error(err)
	}
}

// ---------------------------------------------------------------------------
// The reconciler, its alarms and the dashboard

// reconcilerEnv are the reconciler's own variables (internal/handler:
// ReconcileFromEnv), declared unset: the defaults suit its timeout.
var reconcilerEnv = []string{"WXPAY_RECONCILE_BUDGET", "WXPAY_RECONCILE_BATCH", "WXPAY_RECONCILE_WORKERS"}

// maxScheduleMinutes is the longest interval ReconcileSchedule may take:
// ReconcilerStalledAlarm wants a pass in each of three 5-minute periods.
const maxScheduleMinutes = 5

var rateRE = regexp.MustCompile(`^rate\(([1-9][0-9]*) (minute|minutes|hour|hours|day|days)\)$`)

// scheduleMinutes is the interval of an EventBridge rate expression, in
// minutes; false for anything else (cron included) and for a unit that
// does not agree with the number (rate(1 minutes) is refused).
func scheduleMinutes(expr string) (int, bool) {
	m := rateRE.FindStringSubmatch(expr)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(m[1])
	if (n == 1) != !strings.HasSuffix(m[2], "s") {
		return 0, false
	}
	switch strings.TrimSuffix(m[2], "s") {
	case "hour":
		n *= 60
	case "day":
		n *= 24 * 60
	}
	return n, true
}

// checkReconciler: the reconciler runs on an EventBridge schedule only
// (!Ref ReconcileSchedule: every minute by default, at most every
// maxScheduleMinutes, enabled, the scheduled event as it is); a failed or
// late pass is retried by neither EventBridge nor Lambda (the next one
// comes with the schedule); its own variables are declared, unset, and
// read by the handler. Its role, timeout, VPC and build are checked with
// the other functions'.
func checkReconciler(in *input) error {
	var e errs
	f := reconcilerID
	if resource(in, f)["Type"] != "AWS::Serverless::Function" {
		return fmt.Errorf("%s: missing or not an AWS::Serverless::Function", f)
	}
	var sched []map[string]any
	for name, ev := range events(in, f) {
		evm, _ := ev.(map[string]any)
		if evm["Type"] != "Schedule" {
			e.add("%s: event %s of type %v; the reconciler runs on its schedule only", f, name, evm["Type"])
			continue
		}
		sched = append(sched, getMap(evm, "Properties"))
	}
	if len(sched) != 1 {
		e.add("%s: %d Schedule events, want one", f, len(sched))
	} else {
		p := sched[0]
		if !isRef(p["Schedule"], "ReconcileSchedule") {
			e.add("%s: Schedule %v, want !Ref ReconcileSchedule", f, p["Schedule"])
		}
		if v, ok := p["Enabled"]; ok && !isTrue(v) {
			e.add("%s: schedule Enabled %v: nothing would be reconciled", f, v)
		}
		if v, ok := p["State"]; ok && v != "ENABLED" {
			e.add("%s: schedule State %v: nothing would be reconciled", f, v)
		}
		for _, k := range []string{"Input", "InputPath", "InputTransformer"} {
			if v, ok := p[k]; ok {
				e.add("%s: schedule %s %v: a pass is the scheduled event as it is", f, k, v)
			}
		}
		if n, ok := in.number(getMap(p, "RetryPolicy")["MaximumRetryAttempts"]); !ok || n != 0 {
			e.add("%s: schedule RetryPolicy.MaximumRetryAttempts %v, want 0 (the next pass comes with the schedule)", f, getMap(p, "RetryPolicy")["MaximumRetryAttempts"])
		}
	}
	param := getMap(getMap(in.tpl, "Parameters"), "ReconcileSchedule")
	if param["Default"] != "rate(1 minute)" {
		e.add("parameter ReconcileSchedule: Default %v, want rate(1 minute)", param["Default"])
	}
	allowed := stringsOrNumbers(param["AllowedValues"])
	if len(allowed) == 0 {
		e.add("parameter ReconcileSchedule: no AllowedValues; want rate expressions of at most %d minutes", maxScheduleMinutes)
	}
	for _, v := range allowed {
		if n, ok := scheduleMinutes(v); !ok || n > maxScheduleMinutes {
			e.add("parameter ReconcileSchedule: %q allowed; want rate expressions of at most %d minutes (ReconcilerStalledAlarm)", v, maxScheduleMinutes)
		}
	}
	eic := getMap(props(in, f), "EventInvokeConfig")
	if n, ok := in.number(eic["MaximumRetryAttempts"]); !ok || n != 0 {
		e.add("%s: EventInvokeConfig.MaximumRetryAttempts %v, want 0 (the next pass comes with the schedule)", f, eic["MaximumRetryAttempts"])
	}
	if n, ok := in.number(eic["MaximumEventAgeInSeconds"]); !ok || n > 60 {
		e.add("%s: EventInvokeConfig.MaximumEventAgeInSeconds %v, want at most 60 (a later pass supersedes it)", f, eic["MaximumEventAgeInSeconds"])
	}
	src, err := os.ReadFile(filepath.Join("..", "internal", "handler", "reconcile.go"))
	if err != nil {
		e.add("%v", err)
	}
	own := getMap(getMap(props(in, f), "Environment"), "Variables")
	for _, k := range reconcilerEnv {
		v, ok := own[k]
		if !ok || !isNoValue(v) {
			e.add("%s: %s is %v, want declared as !Ref AWS::NoValue (unset, settable)", f, k, v)
		}
		if !strings.Contains(string(src), `"`+k+`"`) {
			e.add("%s: the handler (internal/handler/reconcile.go) does not read %s", f, k)
		}
	}
	for k := range own {
		if !slices.Contains(reconcilerEnv, k) && k != "WXPAY_CAMPAIGN_TABLE" {
			e.add("%s: own variable %s; the reconciler's are %v and WXPAY_CAMPAIGN_TABLE", f, k, reconcilerEnv)
		}
	}
	return e.err()
}

// The metrics the functions write in their log lines (Embedded Metric
// Format): their namespace, and each one's dimensions.
const metricsNamespace = "WxRedpack"

var metricDims = map[string][]string{
	"Sends":                     {"Function", "Api", "Outcome"},
	"Replays":                   {"Function"},
	"Conflicts":                 {"Function"},
	"Unknowns":                  {"Function"},
	"Transitions":               {"From", "To"},
	"NeedsAttention":            nil,
	"UnknownOverOneHour":        nil,
	"OldestUnsettledAgeSeconds": nil,
	// The campaigns' (the runner's): written without dimensions, as the
	// alarm on CampaignPaused and the dashboard read them.
	"CampaignSends":      nil,
	"CampaignPaused":     nil,
	"CampaignFreqLimits": nil,
}

// alarmSpec is an alarm of the template, exactly.
type alarmSpec struct {
	id, namespace, metric, stat, op string
	threshold                       float64
	period, evaluations             float64
	missing                         string
}

var alarmSpecs = []alarmSpec{
	// The dead-letter queue holds a message.
	{"RedpackDeadLetterAlarm", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "GreaterThanThreshold", 0, 60, 1, "notBreaching"},
	// A red packet UNKNOWN for over an hour (the reconciler's gauge).
	{"UnknownOverOneHourAlarm", metricsNamespace, "UnknownOverOneHour", "Maximum", "GreaterThanThreshold", 0, 300, 1, "notBreaching"},
	// A red packet moved to NEEDS_ATTENTION.
	{"NeedsAttentionAlarm", metricsNamespace, "NeedsAttention", "Sum", "GreaterThanThreshold", 0, 300, 1, "notBreaching"},
	// No pass of the reconciler in 15 minutes: its gauge is missing.
	{"ReconcilerStalledAlarm", metricsNamespace, "OldestUnsettledAgeSeconds", "SampleCount", "LessThanThreshold", 1, 300, 3, "breaching"},
	// A campaign paused (NOTENOUGH and the like).
	{"CampaignPausedAlarm", metricsNamespace, "CampaignPaused", "Sum", "GreaterThanThreshold", 0, 60, 1, "notBreaching"},
}

// checkAlarms: exactly the alarms of alarmSpecs, each on its metric (the
// WxRedpack ones without dimensions or a unit, as the functions write
// them), statistic, threshold and periods, notifying AlarmTopicArn when it
// is given.
func checkAlarms(in *input) error {
	var e errs
	var want []string
	for _, a := range alarmSpecs {
		want = append(want, a.id)
	}
	slices.Sort(want)
	if got := in.ofType("AWS::CloudWatch::Alarm"); !slices.Equal(got, want) {
		e.add("alarms %v, want %v", got, want)
	}
	conds := getMap(in.tpl, "Conditions")
	for _, a := range alarmSpecs {
		p := props(in, a.id)
		if p["Namespace"] != a.namespace || p["MetricName"] != a.metric || p["Statistic"] != a.stat || p["ComparisonOperator"] != a.op || p["TreatMissingData"] != a.missing {
			e.add("%s: %v %v %v %v, missing data %v; want %s %s %s %s, %s", a.id, p["Namespace"], p["MetricName"], p["Statistic"], p["ComparisonOperator"], p["TreatMissingData"],
				a.namespace, a.metric, a.stat, a.op, a.missing)
		}
		for k, w := range map[string]float64{"Threshold": a.threshold, "Period": a.period, "EvaluationPeriods": a.evaluations} {
			if n, ok := in.number(p[k]); !ok || n != w {
				e.add("%s: %s %v, want %v", a.id, k, p[k], w)
			}
		}
		if v, ok := p["DatapointsToAlarm"]; ok {
			if n, _ := in.number(v); n != a.evaluations {
				e.add("%s: DatapointsToAlarm %v, want every one of its %v periods", a.id, v, a.evaluations)
			}
		}
		for _, k := range []string{"Unit", "Metrics", "ExtendedStatistic"} {
			if v, ok := p[k]; ok {
				e.add("%s: %s %v: an alarm with a unit sees only the data points written with it", a.id, k, v)
			}
		}
		if a.namespace == metricsNamespace {
			dims, known := metricDims[a.metric]
			if !known || len(dims) > 0 {
				e.add("%s: metric %s is not one of the functions' metrics without dimensions", a.id, a.metric)
			}
			if v, ok := p["Dimensions"]; ok {
				e.add("%s: Dimensions %v; the functions write %s without any", a.id, v, a.metric)
			}
		}
		ifv, ok := fnIf(p["AlarmActions"])
		var cond string
		if ok {
			cond, _ = ifv[0].(string)
		}
		if !ok || !reflect.DeepEqual(ifv[1], []any{map[string]any{"Ref": "AlarmTopicArn"}}) || !isNoValue(ifv[2]) || !slices.Contains(refsIn(conds[cond]), "AlarmTopicArn") {
			e.add("%s: AlarmActions %v, want !If [<AlarmTopicArn given>, [!Ref AlarmTopicArn], !Ref AWS::NoValue]", a.id, p["AlarmActions"])
		}
	}
	if dlq := deadLetterQueue(in); dlq != "" {
		want := []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{dlq, "QueueName"}}}}
		if d := props(in, "RedpackDeadLetterAlarm")["Dimensions"]; !reflect.DeepEqual(d, want) {
			e.add("RedpackDeadLetterAlarm: Dimensions %v, want QueueName of %s", d, dlq)
		}
	}
	return e.err()
}

// deadLetterQueue is the queue the send queues redrive to.
func deadLetterQueue(in *input) string {
	for _, q := range in.ofType("AWS::SQS::Queue") {
		if dlq, ok := getAtt(getMap(props(in, q), "RedrivePolicy")["deadLetterTargetArn"], "Arn"); ok {
			return dlq
		}
	}
	return ""
}

var subVarRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// substitute fills in a Fn::Sub string as CloudFormation would, with a
// placeholder for each variable: ${Name} becomes Name-ref, ${Name.Attr}
// Name-Attr, ${AWS::Region} AWS-Region-ref and ${!Literal} ${Literal}. It
// returns the names the string refers to.
func substitute(s string) (string, []string) {
	var names []string
	out := subVarRE.ReplaceAllStringFunc(s, func(m string) string {
		v := subVarRE.FindStringSubmatch(m)[1]
		if strings.HasPrefix(v, "!") {
			return "${" + v[1:] + "}"
		}
		name, attr, ok := strings.Cut(v, ".")
		names = append(names, name)
		if !ok {
			attr = "ref"
		}
		return strings.ReplaceAll(name, "::", "-") + "-" + attr
	})
	return out, names
}

// checkDashboard: one dashboard, named per stack and region (dashboard
// names are per account), whose body is JSON once Fn::Sub has filled it
// in, every variable a resource of the template or AWS::Region, every
// metric widget in the stack's region, and widgets for: every metric the
// functions write (the ones with dimensions through SEARCH over exactly
// their dimensions), the dead-letter queue's depth, Lambda errors and
// throttles of every function, and the state of every alarm.
func checkDashboard(in *input) error {
	var e errs
	ids := in.ofType("AWS::CloudWatch::Dashboard")
	if len(ids) != 1 {
		return fmt.Errorf("want one AWS::CloudWatch::Dashboard, got %v", ids)
	}
	id := ids[0]
	p := props(in, id)
	name, _ := getMap(p, "DashboardName")["Fn::Sub"].(string)
	if !strings.Contains(name, "${AWS::StackName}") || !strings.Contains(name, "${AWS::Region}") {
		e.add("%s: DashboardName %v, want !Sub with ${AWS::StackName} and ${AWS::Region} (dashboard names are per account)", id, p["DashboardName"])
	}
	raw, ok := getMap(p, "DashboardBody")["Fn::Sub"].(string)
	if !ok {
		return fmt.Errorf("%s: DashboardBody %v, want !Sub of the JSON", id, p["DashboardBody"])
	}
	text, names := substitute(raw)
	for _, n := range names {
		if _, isResource := resources(in)[n]; !isResource && n != "AWS::Region" {
			e.add("%s: DashboardBody refers to ${%s}, not a resource of the template", id, n)
		}
	}
	var body struct {
		Widgets []json.RawMessage `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(text), &body); err != nil {
		return fmt.Errorf("%s: DashboardBody is not JSON once substituted: %v", id, err)
	}
	var exprs []string
	var series [][]string
	alarmWidget := []string{}
	for i, raw := range body.Widgets {
		var w struct {
			Type       string         `json:"type"`
			X          int            `json:"x"`
			Width      int            `json:"width"`
			Properties map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			e.add("%s: widget %d: %v", id, i, err)
			continue
		}
		if w.X < 0 || w.Width < 1 || w.X+w.Width > 24 {
			e.add("%s: widget %d (%v) at x %d, width %d: off the 24-column grid", id, i, w.Properties["title"], w.X, w.Width)
		}
		switch w.Type {
		case "alarm":
			alarmWidget = append(alarmWidget, stringsIn(w.Properties["alarms"])...)
		case "metric":
			if r := w.Properties["region"]; r != "AWS-Region-ref" {
				e.add("%s: widget %v in region %v, want ${AWS::Region}", id, w.Properties["title"], r)
			}
			ms, _ := w.Properties["metrics"].([]any)
			for _, m := range ms {
				l, _ := m.([]any)
				if len(l) == 1 {
					if em, ok := l[0].(map[string]any); ok {
						x, _ := em["expression"].(string)
						exprs = append(exprs, x)
						continue
					}
				}
				var s []string
				for _, x := range l {
					if str, ok := x.(string); ok {
						s = append(s, str)
					}
				}
				series = append(series, s)
			}
		}
	}
	hasSeries := func(want ...string) bool {
		return slices.ContainsFunc(series, func(s []string) bool { return slices.Equal(s, want) })
	}
	for metric, dims := range metricDims {
		if len(dims) == 0 {
			if !hasSeries(metricsNamespace, metric) {
				e.add("%s: no widget of %s %s", id, metricsNamespace, metric)
			}
			continue
		}
		search := fmt.Sprintf(`{%s,%s} MetricName="%s"`, metricsNamespace, strings.Join(dims, ","), metric)
		if !slices.ContainsFunc(exprs, func(x string) bool { return strings.HasPrefix(x, "SEARCH(") && strings.Contains(x, search) }) {
			e.add("%s: no SEARCH('%s', ...)", id, search)
		}
	}
	for _, f := range contract {
		for _, m := range []string{"Errors", "Throttles"} {
			if !hasSeries("AWS/Lambda", m, "FunctionName", f.ID+"-ref") {
				e.add("%s: no Lambda %s of %s", id, m, f.ID)
			}
		}
	}
	if dlq := deadLetterQueue(in); !hasSeries("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq+"-QueueName") {
		e.add("%s: no depth of the dead-letter queue %s", id, dlq)
	}
	for _, a := range in.ofType("AWS::CloudWatch::Alarm") {
		if !slices.Contains(alarmWidget, a+"-Arn") {
			e.add("%s: alarm %s not in an alarm widget", id, a)
		}
	}
	return e.err()
}

// ---------------------------------------------------------------------------
// Egress modes, architectures and partitions: the template resolved for
// parameter values, as CloudFormation creates the stack.

// secretARN is a WxpaySecretArn value for resolving the template.
const secretARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wxpay/prod-AbCdEf"

// The merchant's network in subnets mode.
var (
	merchantSubnets = []string{"subnet-0a1b2c3d4e5f60718", "subnet-1a2b3c4d5e6f70819"}
	merchantGroups  = []string{"sg-0a1b2c3d4e5f60718"}
)

// egressCase is a parameter combination of the egress parameters and what
// its stack must hold.
type egressCase struct {
	name     string
	values   map[string]string
	mode     string // public, subnets or create
	nats     int    // create: NAT gateways (and Elastic IPs)
	endpoint bool   // create: a Secrets Manager interface endpoint
}

var egressCases = []egressCase{
	{"public (default)", nil, "public", 0, false},
	{"public, create-only parameters set", map[string]string{"NatGateways": "2", "SecretsManagerEndpoint": "true"}, "public", 0, false},
	{"subnets", map[string]string{"EgressMode": "subnets", "SubnetIds": strings.Join(merchantSubnets, ","), "SecurityGroupIds": strings.Join(merchantGroups, ",")}, "subnets", 0, false},
	{"subnets, create-only parameters set", map[string]string{"EgressMode": "subnets", "SubnetIds": strings.Join(merchantSubnets, ","), "SecurityGroupIds": strings.Join(merchantGroups, ","), "NatGateways": "2", "SecretsManagerEndpoint": "true"}, "subnets", 0, false},
	{"create, one NAT gateway", map[string]string{"EgressMode": "create"}, "create", 1, false},
	{"create, two NAT gateways", map[string]string{"EgressMode": "create", "NatGateways": "2"}, "create", 2, false},
	{"create, Secrets Manager endpoint", map[string]string{"EgressMode": "create", "SecretsManagerEndpoint": "true"}, "create", 1, true},
	{"create, two NAT gateways and the endpoint", map[string]string{"EgressMode": "create", "NatGateways": "2", "SecretsManagerEndpoint": "true", "VpcCidr": "10.20.0.0/20"}, "create", 2, true},
}

// architectures: the template's Architecture values and the GOARCH the
// Makefile must build each with.
var architectures = []struct{ lambda, goarch string }{
	{"arm64", "arm64"},
	{"x86_64", "amd64"},
}

// TestEgressModes resolves the template for each egress mode: the right
// resources exist (none of a VPC in public and subnets modes), every
// function has its VpcConfig in the VPC modes only, EgressIps is an output
// in create mode only, and the network interface permissions are granted
// in the VPC modes only.
func TestEgressModes(t *testing.T) {
	in := load(t)
	for _, c := range egressCases {
		t.Run(c.name, func(t *testing.T) {
			if err := checkEgressCase(in, c); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("subnets mode needs subnets and security groups", func(t *testing.T) {
		if err := checkEgressRules(in); err != nil {
			t.Error(err)
		}
	})
}

// TestArchitectures resolves the template for each architecture and runs
// make for it: the functions' Architectures and the Makefile's GOARCH
// agree, and arm64 is the default of both.
func TestArchitectures(t *testing.T) {
	in := load(t)
	for _, a := range architectures {
		t.Run(a.lambda, func(t *testing.T) {
			if err := checkArchitectureValue(in, a.lambda, a.goarch); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		if err := checkArchitectureDefaults(in); err != nil {
			t.Error(err)
		}
	})
}

// resolver evaluates what depends only on parameter values: conditions,
// Rules, Fn::If, AWS::NoValue and Refs to parameters.
type resolver struct {
	params map[string]any // a string, or []any of strings for list types
	conds  map[string]any
	memo   map[string]bool
	err    error
}

func newResolver(in *input, values map[string]string) (*resolver, error) {
	r := &resolver{params: map[string]any{}, conds: getMap(in.tpl, "Conditions"), memo: map[string]bool{}}
	defs := getMap(in.tpl, "Parameters")
	for name := range values {
		if _, ok := defs[name]; !ok {
			return nil, fmt.Errorf("parameter %s is not in the template", name)
		}
	}
	for name, def := range defs {
		dm, _ := def.(map[string]any)
		v, ok := values[name]
		if !ok {
			d, has := dm["Default"]
			if !has {
				return nil, fmt.Errorf("parameter %s has no value and no default", name)
			}
			v = fmt.Sprint(d)
		}
		items := []string{v}
		typ, _ := dm["Type"].(string)
		list := typ == "CommaDelimitedList" || strings.HasPrefix(typ, "List<")
		if list {
			items = strings.Split(v, ",")
		}
		for i, item := range items {
			item = strings.TrimSpace(item)
			items[i] = item
			if av, ok := dm["AllowedValues"].([]any); ok && !slices.ContainsFunc(av, func(a any) bool { return fmt.Sprint(a) == item }) {
				return nil, fmt.Errorf("parameter %s=%q not in %v", name, item, av)
			}
			if pat, ok := dm["AllowedPattern"].(string); ok {
				re, err := regexp.Compile(pat)
				if err != nil {
					return nil, fmt.Errorf("parameter %s: AllowedPattern: %v", name, err)
				}
				if !re.MatchString(item) {
					return nil, fmt.Errorf("parameter %s=%q does not match %s", name, item, pat)
				}
			}
		}
		if list {
			l := make([]any, len(items))
			for i, x := range items {
				l[i] = x
			}
			r.params[name] = l
		} else {
			r.params[name] = v
		}
	}
	return r, nil
}

func (r *resolver) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, a...)
	}
}

func (r *resolver) condition(name string) bool {
	if v, ok := r.memo[name]; ok {
		return v
	}
	c, ok := r.conds[name]
	if !ok {
		r.fail("condition %s is not defined", name)
		return false
	}
	r.memo[name] = false // a cycle resolves false, and fails below
	v := r.truth(c)
	r.memo[name] = v
	return v
}

// truth evaluates a condition function, or a rule function of Rules.
func (r *resolver) truth(expr any) bool {
	m, ok := expr.(map[string]any)
	if !ok || len(m) != 1 {
		r.fail("not a condition: %v", expr)
		return false
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Condition":
			s, _ := arg.(string)
			return r.condition(s)
		case "Fn::Not":
			return len(args) == 1 && !r.truth(args[0])
		case "Fn::And":
			for _, x := range args {
				if !r.truth(x) {
					return false
				}
			}
			return true
		case "Fn::Or":
			for _, x := range args {
				if r.truth(x) {
					return true
				}
			}
			return false
		case "Fn::Equals":
			if len(args) != 2 {
				r.fail("Fn::Equals %v", args)
				return false
			}
			a, _ := r.value(args[0])
			b, _ := r.value(args[1])
			return fmt.Sprint(a) == fmt.Sprint(b)
		case "Fn::EachMemberEquals":
			if len(args) != 2 {
				r.fail("Fn::EachMemberEquals %v", args)
				return false
			}
			members, _ := r.value(args[0])
			want, _ := r.value(args[1])
			l, _ := members.([]any)
			for _, x := range l {
				if fmt.Sprint(x) != fmt.Sprint(want) {
					return false
				}
			}
			return true
		}
		r.fail("condition function %s is not supported here", fn)
	}
	return false
}

// value resolves v; false means AWS::NoValue.
func (r *resolver) value(v any) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		if ifv, ok := fnIf(x); ok {
			cond, _ := ifv[0].(string)
			if r.condition(cond) {
				return r.value(ifv[1])
			}
			return r.value(ifv[2])
		}
		if name, ok := ref(x); ok {
			if name == "AWS::NoValue" {
				return nil, false
			}
			if p, ok := r.params[name]; ok {
				return p, true
			}
			return x, true
		}
		out := make(map[string]any, len(x))
		for k, c := range x {
			if c, ok := r.value(c); ok {
				out[k] = c
			}
		}
		return out, true
	case []any:
		out := make([]any, 0, len(x))
		for _, c := range x {
			if c, ok := r.value(c); ok {
				out = append(out, c)
			}
		}
		return out, true
	}
	return v, true
}

// rules fails on the first Rules assertion the parameters break.
func (r *resolver) rules(tpl map[string]any) error {
	for name, rule := range getMap(tpl, "Rules") {
		rm, _ := rule.(map[string]any)
		if c, ok := rm["RuleCondition"]; ok && !r.truth(c) {
			continue
		}
		as, _ := rm["Assertions"].([]any)
		for _, a := range as {
			am, _ := a.(map[string]any)
			if !r.truth(am["Assert"]) {
				return fmt.Errorf("rule %s: %v", name, am["AssertDescription"])
			}
		}
	}
	return r.err
}

// resolve returns the template CloudFormation would create for values
// (WxpaySecretArn filled in when not given): Rules checked, the resources
// and outputs whose condition is false dropped, everything else resolved.
// Conditions and Rules are gone; Parameters stay, for their definitions.
func resolve(in *input, values map[string]string) (*input, error) {
	v := map[string]string{"WxpaySecretArn": secretARN}
	maps.Copy(v, values)
	r, err := newResolver(in, v)
	if err != nil {
		return nil, err
	}
	if err := r.rules(in.tpl); err != nil {
		return nil, err
	}
	tpl := map[string]any{}
	for k, x := range in.tpl {
		switch k {
		case "Conditions", "Rules", "Globals":
		case "Resources", "Outputs":
			kept := map[string]any{}
			for id, item := range getMap(in.tpl, k) {
				im, _ := item.(map[string]any)
				if c, ok := im["Condition"].(string); ok {
					if !r.condition(c) {
						continue
					}
					im = maps.Clone(im)
					delete(im, "Condition")
				}
				if k == "Resources" && im["Type"] == "AWS::Serverless::Function" {
					im = maps.Clone(im)
					im["Properties"] = withGlobals(getMap(im, "Properties"), globalsFn(in))
				}
				kept[id], _ = r.value(im)
			}
			tpl[k] = kept
		case "Parameters":
			tpl[k] = x
		default:
			tpl[k], _ = r.value(x)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return &input{tpl: tpl, makefile: in.makefile, localEnv: in.localEnv}, nil
}

// withGlobals merges the Globals' function properties into a function's
// own, as SAM does: the function's value wins, and two plain mappings (not
// intrinsic functions) are merged key by key.
func withGlobals(own, globals map[string]any) map[string]any {
	out := maps.Clone(own)
	for k, g := range globals {
		o, ok := out[k]
		if !ok {
			out[k] = g
			continue
		}
		om, oIsMap := o.(map[string]any)
		gm, gIsMap := g.(map[string]any)
		if oIsMap && gIsMap && !isIntrinsic(om) && !isIntrinsic(gm) {
			out[k] = withGlobals(om, gm)
		}
	}
	return out
}

func isIntrinsic(m map[string]any) bool {
	if len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

var pseudoParams = []string{"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition", "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

var subNameRE = regexp.MustCompile(`\$\{([A-Za-z0-9:]+)(\.[A-Za-z0-9.]+)?\}`)

// danglingRefs lists what the resolved template's resources and outputs
// refer to (Ref, GetAtt, Sub, DependsOn) that is neither one of its
// resources, nor a parameter, nor a pseudo parameter.
func danglingRefs(rin *input) []string {
	known := map[string]bool{}
	for id := range resources(rin) {
		known[id] = true
	}
	for name := range getMap(rin.tpl, "Parameters") {
		known[name] = true
	}
	for _, p := range pseudoParams {
		known[p] = true
	}
	var out []string
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if name, ok := ref(x); ok && !known[name] {
				out = append(out, where+" -> "+name)
			}
			if l, ok := x["Fn::GetAtt"].([]any); ok && len(l) == 2 {
				if name, _ := l[0].(string); !known[name] {
					out = append(out, where+" -> "+name)
				}
			}
			if s, ok := x["Fn::Sub"].(string); ok {
				for _, m := range subNameRE.FindAllStringSubmatch(s, -1) {
					if !known[m[1]] {
						out = append(out, where+" -> "+m[1])
					}
				}
			}
			for _, c := range x {
				walk(where, c)
			}
		case []any:
			for _, c := range x {
				walk(where, c)
			}
		}
	}
	for _, section := range []string{"Resources", "Outputs"} {
		for id, item := range getMap(rin.tpl, section) {
			walk(section+"."+id, item)
			im, _ := item.(map[string]any)
			for _, d := range stringsIn(im["DependsOn"]) {
				if !known[d] {
					out = append(out, section+"."+id+" DependsOn "+d)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// checkEgress: the egress parameters, every egress case, and the Rules of
// subnets mode.
func checkEgress(in *input) error {
	var e errs
	defs := getMap(in.tpl, "Parameters")
	for _, p := range []struct {
		name, def string
		allowed   []string
	}{
		{"EgressMode", "public", []string{"public", "subnets", "create"}},
		{"NatGateways", "1", []string{"1", "2"}},
		{"SecretsManagerEndpoint", "false", []string{"false", "true"}},
	} {
		d := getMap(defs, p.name)
		allowed := stringsOrNumbers(d["AllowedValues"])
		if fmt.Sprint(d["Default"]) != p.def || !slices.Equal(allowed, p.allowed) {
			e.add("parameter %s: Default %v, AllowedValues %v; want %s and %v", p.name, d["Default"], d["AllowedValues"], p.def, p.allowed)
		}
	}
	for _, p := range []string{"SubnetIds", "SecurityGroupIds"} {
		if d := getMap(defs, p); d["Type"] != "CommaDelimitedList" || d["Default"] != "" {
			e.add("parameter %s: Type %v, Default %v; want CommaDelimitedList, '' (needed in subnets mode only)", p, d["Type"], d["Default"])
		}
	}
	for _, c := range egressCases {
		if err := checkEgressCase(in, c); err != nil {
			e.add("%s: %w", c.name, err)
		}
	}
	if err := checkEgressRules(in); err != nil {
		e.add("%w", err)
	}
	return e.err()
}

func stringsOrNumbers(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = fmt.Sprint(x)
	}
	return out
}

// checkEgressRules: subnets mode without subnets or security groups is
// refused before anything is created.
func checkEgressRules(in *input) error {
	var e errs
	for _, missing := range []string{"SubnetIds", "SecurityGroupIds"} {
		v := map[string]string{"EgressMode": "subnets", "SubnetIds": strings.Join(merchantSubnets, ","), "SecurityGroupIds": strings.Join(merchantGroups, ",")}
		delete(v, missing)
		if _, err := resolve(in, v); err == nil {
			e.add("EgressMode subnets without %s: the template's Rules accept it", missing)
		}
	}
	return e.err()
}

func checkEgressCase(in *input, c egressCase) error {
	rin, err := resolve(in, c.values)
	if err != nil {
		return err
	}
	var e errs
	if d := danglingRefs(rin); len(d) > 0 {
		e.add("references to what this mode does not create: %v", d)
	}
	var network []string
	for id := range resources(rin) {
		if typ, _ := resource(rin, id)["Type"].(string); strings.HasPrefix(typ, "AWS::EC2::") {
			network = append(network, id)
		}
	}
	slices.Sort(network)
	outputs := getMap(rin.tpl, "Outputs")
	vpc := c.mode != "public"

	for _, f := range contract {
		vc, has := fnProp(rin, f.ID, "VpcConfig").(map[string]any)
		switch c.mode {
		case "public":
			if has || fnProp(rin, f.ID, "VpcConfig") != nil {
				e.add("%s: VpcConfig %v in public mode", f.ID, fnProp(rin, f.ID, "VpcConfig"))
			}
		case "subnets":
			want := map[string]any{"SubnetIds": anys(merchantSubnets), "SecurityGroupIds": anys(merchantGroups), "Ipv6AllowedForDualStack": false}
			if !reflect.DeepEqual(vc, want) {
				e.add("%s: VpcConfig %v, want %v (the merchant's subnets and groups, IPv4)", f.ID, vc, want)
			}
		case "create":
			if vc == nil || vc["Ipv6AllowedForDualStack"] != false {
				e.add("%s: VpcConfig %v, want the stack's private subnets and security group, IPv4", f.ID, vc)
			}
		}
		// The network interface permissions: in the VPC modes only.
		roleID, _ := getAtt(fnProp(rin, f.ID, "Role"), "Arn")
		var ec2 []string
		for _, st := range roleStatements(props(rin, roleID)) {
			for _, a := range stringsIn(st.body["Action"]) {
				if strings.HasPrefix(a, "ec2:") {
					ec2 = append(ec2, a)
				}
			}
		}
		slices.Sort(ec2)
		var want []string
		if vpc {
			want = slices.Sorted(slices.Values(append(slices.Clone(eniActions), describeActions...)))
		}
		if !slices.Equal(ec2, want) {
			e.add("%s: EC2 actions %v in %s mode, want %v", roleID, ec2, c.mode, want)
		}
	}

	if c.mode != "create" {
		if len(network) > 0 {
			e.add("network resources %v in %s mode: only create mode builds a network", network, c.mode)
		}
		for _, o := range []string{"EgressIps", "VpcId"} {
			if _, ok := outputs[o]; ok {
				e.add("output %s in %s mode: create mode's only", o, c.mode)
			}
		}
		return e.err()
	}
	if err := checkCreatedNetwork(rin, c); err != nil {
		e.add("%w", err)
	}
	return e.err()
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// refList returns the names of a list of Refs.
func refList(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		if name, ok := ref(x); ok {
			out = append(out, name)
		}
	}
	return out
}

// checkCreatedNetwork: create mode's VPC, in two Availability Zones: the
// functions in private subnets whose default route is a NAT gateway (one
// each with two), every NAT gateway with its own Elastic IP in a subnet
// routed to the internet gateway, DynamoDB and S3 gateway endpoints on the
// functions' route tables, a Secrets Manager interface endpoint when asked
// for, outbound HTTPS only, IPv4 only, and EgressIps naming every Elastic
// IP.
func checkCreatedNetwork(rin *input, c egressCase) error {
	var e errs
	one := func(typ string) string {
		ids := rin.ofType(typ)
		if len(ids) != 1 {
			e.add("want one %s, got %v", typ, ids)
			return ""
		}
		return ids[0]
	}
	vpc := one("AWS::EC2::VPC")
	igw := one("AWS::EC2::InternetGateway")
	if vp := props(rin, vpc); !isTrue(vp["EnableDnsSupport"]) || !isTrue(vp["EnableDnsHostnames"]) {
		e.add("%s: EnableDnsSupport and EnableDnsHostnames must be on (interface endpoints' private DNS)", vpc)
	}
	for _, typ := range []string{"AWS::EC2::VPCCidrBlock", "AWS::EC2::EgressOnlyInternetGateway"} {
		if ids := rin.ofType(typ); len(ids) > 0 {
			e.add("%s %v: egress is IPv4 only (WeChat's allowlist takes IPv4)", typ, ids)
		}
	}
	subnetAZ := map[string]string{}
	for _, s := range rin.ofType("AWS::EC2::Subnet") {
		sp := props(rin, s)
		if !isRef(sp["VpcId"], vpc) {
			e.add("%s: VpcId %v", s, sp["VpcId"])
		}
		if _, ok := sp["Ipv6CidrBlock"]; ok || isTrue(sp["AssignIpv6AddressOnCreation"]) {
			e.add("%s: IPv6", s)
		}
		subnetAZ[s] = fmt.Sprint(sp["AvailabilityZone"])
	}
	tableOf := map[string]string{}
	for _, a := range rin.ofType("AWS::EC2::SubnetRouteTableAssociation") {
		ap := props(rin, a)
		s, _ := ref(ap["SubnetId"])
		t, _ := ref(ap["RouteTableId"])
		tableOf[s] = t
	}
	defaultRoute := map[string]map[string]any{}
	for _, r := range rin.ofType("AWS::EC2::Route") {
		rp := props(rin, r)
		if rp["DestinationCidrBlock"] == "0.0.0.0/0" {
			t, _ := ref(rp["RouteTableId"])
			defaultRoute[t] = rp
		}
	}

	nats, eips := rin.ofType("AWS::EC2::NatGateway"), rin.ofType("AWS::EC2::EIP")
	if len(nats) != c.nats || len(eips) != c.nats {
		e.add("NAT gateways %v and Elastic IPs %v, want %d of each", nats, eips, c.nats)
	}
	var natEIPs []string
	natAZ := map[string]string{}
	for _, n := range nats {
		np := props(rin, n)
		eip, ok := getAtt(np["AllocationId"], "AllocationId")
		if !ok || !slices.Contains(eips, eip) {
			e.add("%s: AllocationId %v, want !GetAtt <an Elastic IP>.AllocationId", n, np["AllocationId"])
		}
		natEIPs = append(natEIPs, eip)
		if ct, ok := np["ConnectivityType"]; ok && ct != "public" {
			e.add("%s: ConnectivityType %v", n, ct)
		}
		s, _ := ref(np["SubnetId"])
		natAZ[n] = subnetAZ[s]
		if !isRef(defaultRoute[tableOf[s]]["GatewayId"], igw) {
			e.add("%s: its subnet %s is not routed to the internet gateway", n, s)
		}
	}
	slices.Sort(natEIPs)
	if !slices.Equal(slices.Compact(natEIPs), eips) {
		e.add("Elastic IPs %v, used by NAT gateways %v: one each", eips, natEIPs)
	}
	for _, eip := range eips {
		if d := props(rin, eip)["Domain"]; d != "vpc" {
			e.add("%s: Domain %v, want vpc", eip, d)
		}
	}

	// The functions' subnets and security group, the same for all four.
	vc, _ := fnProp(rin, "SendFunction", "VpcConfig").(map[string]any)
	fnSubnets, fnGroups := refList(vc["SubnetIds"]), refList(vc["SecurityGroupIds"])
	for _, f := range contract {
		if !reflect.DeepEqual(fnProp(rin, f.ID, "VpcConfig"), fnProp(rin, "SendFunction", "VpcConfig")) {
			e.add("%s: VpcConfig differs from SendFunction's", f.ID)
		}
	}
	azs := map[string]bool{}
	usedNATs := map[string]bool{}
	var fnTables []string
	for _, s := range fnSubnets {
		if resource(rin, s)["Type"] != "AWS::EC2::Subnet" {
			e.add("functions' subnet %s is not a subnet of the stack", s)
			continue
		}
		if isTrue(props(rin, s)["MapPublicIpOnLaunch"]) {
			e.add("%s: the functions' subnet maps public IPs", s)
		}
		azs[subnetAZ[s]] = true
		t := tableOf[s]
		fnTables = append(fnTables, t)
		nat, _ := ref(defaultRoute[t]["NatGatewayId"])
		if !slices.Contains(nats, nat) {
			e.add("%s: default route %v, want a NAT gateway", s, defaultRoute[t])
			continue
		}
		usedNATs[nat] = true
		if c.nats > 1 && natAZ[nat] != subnetAZ[s] {
			e.add("%s: routed to %s in another Availability Zone, with a NAT gateway in each", s, nat)
		}
	}
	if len(fnSubnets) != 2 || len(azs) != 2 {
		e.add("functions' subnets %v, want two in two Availability Zones", fnSubnets)
	}
	if len(usedNATs) != len(nats) {
		e.add("the functions' subnets use NAT gateways %v, want all of %v", slices.Sorted(maps.Keys(usedNATs)), nats)
	}
	slices.Sort(fnTables)

	endpoints := map[string]map[string]any{}
	for _, id := range rin.ofType("AWS::EC2::VPCEndpoint") {
		ep := props(rin, id)
		sub, _ := getMap(ep, "ServiceName")["Fn::Sub"].(string)
		svc, ok := strings.CutPrefix(sub, "com.amazonaws.${AWS::Region}.")
		if !ok {
			e.add("%s: ServiceName %v, want !Sub com.amazonaws.${AWS::Region}.<service>", id, ep["ServiceName"])
			continue
		}
		endpoints[svc] = ep
	}
	want := []string{"dynamodb", "s3"}
	if c.endpoint {
		want = append(want, "secretsmanager")
	}
	if got := slices.Sorted(maps.Keys(endpoints)); !slices.Equal(got, want) {
		e.add("VPC endpoints for %v, want %v", got, want)
	}
	for _, svc := range []string{"dynamodb", "s3"} {
		ep := endpoints[svc]
		tables := refList(ep["RouteTableIds"])
		slices.Sort(tables)
		if ep["VpcEndpointType"] != "Gateway" || !slices.Equal(tables, fnTables) {
			e.add("%s endpoint: type %v on route tables %v, want a gateway endpoint on the functions' %v", svc, ep["VpcEndpointType"], tables, fnTables)
		}
	}
	if ep, ok := endpoints["secretsmanager"]; ok {
		subnets := refList(ep["SubnetIds"])
		if ep["VpcEndpointType"] != "Interface" || !isTrue(ep["PrivateDnsEnabled"]) || !slices.Equal(slices.Sorted(slices.Values(subnets)), slices.Sorted(slices.Values(fnSubnets))) {
			e.add("secretsmanager endpoint %v: want an interface endpoint with private DNS in the functions' subnets", ep)
		}
	}

	if len(fnGroups) != 1 || resource(rin, fnGroups[0])["Type"] != "AWS::EC2::SecurityGroup" {
		e.add("functions' security groups %v, want the stack's one", fnGroups)
	} else {
		sg := props(rin, fnGroups[0])
		if in, ok := sg["SecurityGroupIngress"]; ok {
			e.add("%s: inbound rules %v", fnGroups[0], in)
		}
		rules, _ := sg["SecurityGroupEgress"].([]any)
		var got []string
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			got = append(got, fmt.Sprintf("%v %v-%v to %v %v %v %v", rm["IpProtocol"], rm["FromPort"], rm["ToPort"], rm["CidrIp"], rm["CidrIpv6"], rm["DestinationPrefixListId"], rm["DestinationSecurityGroupId"]))
		}
		if !slices.Equal(got, []string{"tcp 443-443 to 0.0.0.0/0 <nil> <nil> <nil>"}) {
			e.add("%s: egress %v, want only tcp 443 to 0.0.0.0/0", fnGroups[0], got)
		}
	}

	// EgressIps: the PublicIp of every Elastic IP, and nothing else.
	out := getMap(getMap(rin.tpl, "Outputs"), "EgressIps")
	var ips []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if name, ok := getAtt(x, "PublicIp"); ok {
				ips = append(ips, name)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(out["Value"])
	slices.Sort(ips)
	if len(eips) == 0 || !slices.Equal(ips, eips) {
		e.add("output EgressIps %v, want the PublicIp of each of %v", out["Value"], eips)
	}
	if _, ok := getMap(rin.tpl, "Outputs")["VpcId"]; !ok {
		e.add("no output VpcId")
	}
	return e.err()
}

// checkArchitecture: the Architecture parameter and, for each value, the
// functions' Architectures and the Makefile's GOARCH.
func checkArchitecture(in *input) error {
	var e errs
	if err := checkArchitectureDefaults(in); err != nil {
		e.add("%w", err)
	}
	for _, a := range architectures {
		if err := checkArchitectureValue(in, a.lambda, a.goarch); err != nil {
			e.add("%s: %w", a.lambda, err)
		}
	}
	return e.err()
}

func checkArchitectureDefaults(in *input) error {
	var e errs
	d := getMap(getMap(in.tpl, "Parameters"), "Architecture")
	if d["Default"] != "arm64" || !slices.Equal(stringsOrNumbers(d["AllowedValues"]), []string{"arm64", "x86_64"}) {
		e.add("parameter Architecture: Default %v, AllowedValues %v; want arm64 and [arm64 x86_64]", d["Default"], d["AllowedValues"])
	}
	for _, f := range contract {
		if err := makeBuildsFor(in.makefile, f, "arm64"); err != nil {
			e.add("make without ARCH: %w", err)
		}
	}
	return e.err()
}

func checkArchitectureValue(in *input, lambda, goarch string) error {
	var e errs
	rin, err := resolve(in, map[string]string{"Architecture": lambda})
	if err != nil {
		return err
	}
	for _, f := range contract {
		if v := fnProp(rin, f.ID, "Architectures"); !reflect.DeepEqual(v, []any{lambda}) {
			e.add("%s: Architectures %v, want [%s]", f.ID, v, lambda)
		}
		if err := makeBuildsFor(in.makefile, f, goarch, "ARCH="+lambda); err != nil {
			e.add("make ARCH=%s: %w", lambda, err)
		}
	}
	return e.err()
}

// makeBuildsFor runs `make -n build-<ID>` over makefile (the text, on
// stdin) with vars and checks that it builds f's package for linux/goarch.
func makeBuildsFor(makefile string, f contractFunction, goarch string, vars ...string) error {
	out, err := makeDryRun(makefile, "build-"+f.ID, vars...)
	if err != nil {
		return err
	}
	var builds []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " go build ") {
			builds = append(builds, line)
		}
	}
	if len(builds) != 1 {
		return fmt.Errorf("build-%s runs %d go builds, want 1:\n%s", f.ID, len(builds), out)
	}
	for _, need := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + goarch + " ", "./functions/" + f.Dir} {
		if !strings.Contains(builds[0], need) {
			return fmt.Errorf("build-%s: %q does not contain %q", f.ID, builds[0], need)
		}
	}
	return nil
}

// makeDryRun prints what make would run for target, with the Makefile
// given as text, from the repository root, in an environment without the
// caller's ARCH, GOARCH or make flags.
func makeDryRun(makefile, target string, vars ...string) (string, error) {
	args := append([]string{"-f", "-", "-n", "--no-print-directory", target, "ARTIFACTS_DIR=/artifacts"}, vars...)
	cmd := exec.Command("make", args...)
	cmd.Dir = ".."
	cmd.Stdin = strings.NewReader(makefile)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains([]string{"ARCH", "GOARCH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES"}, k) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// servicePrincipalRE matches a service principal (lambda.amazonaws.com),
// the one place a template may spell the domain: aws-cn uses the same.
var servicePrincipalRE = regexp.MustCompile(`^[a-z0-9-]+\.amazonaws\.com$`)

// checkPartition: nothing in Globals, Resources or Outputs names a
// partition or the amazonaws.com domain (ARNs use ${AWS::Partition}, URLs
// ${AWS::URLSuffix}), pseudo parameters only inside Fn::Sub, and the API is
// regional: the China regions have no edge-optimized endpoints.
func checkPartition(in *input) error {
	var e errs
	var walk func(where string, v any, inSub bool)
	walk = func(where string, v any, inSub bool) {
		switch x := v.(type) {
		case string:
			if strings.Contains(x, "arn:aws") {
				e.add("%s: %q names a partition; use arn:${AWS::Partition}", where, x)
			}
			if strings.Contains(x, "amazonaws.com") && !servicePrincipalRE.MatchString(x) {
				e.add("%s: %q names the domain; use ${AWS::URLSuffix}", where, x)
			}
			if strings.Contains(x, "${") && !inSub {
				e.add("%s: %q outside Fn::Sub", where, x)
			}
			if strings.HasPrefix(x, "arn:") && !strings.HasPrefix(x, "arn:${AWS::Partition}:") {
				e.add("%s: ARN %q, want arn:${AWS::Partition}:...", where, x)
			}
		case map[string]any:
			for k, c := range x {
				walk(where, c, inSub || k == "Fn::Sub")
			}
		case []any:
			for _, c := range x {
				walk(where, c, inSub)
			}
		}
	}
	for _, section := range []string{"Globals", "Resources", "Outputs"} {
		for id, v := range getMap(in.tpl, section) {
			walk(section+"."+id, v, false)
		}
	}
	for _, api := range in.ofType("AWS::Serverless::Api") {
		if t := getMap(props(in, api), "EndpointConfiguration")["Type"]; t != "REGIONAL" {
			e.add("%s: EndpointConfiguration.Type %v, want REGIONAL (no edge-optimized endpoints in the China regions)", api, t)
		}
	}
	return e.err()
}

// ---------------------------------------------------------------------------
// Campaigns

// checkCampaigns: the rate parameters; CampaignTable kept like the ledger
// (Retain, deletion protection, point-in-time recovery, on-demand, the AWS
// managed key), keyed by id alone; CampaignBucket private, versioned,
// encrypted (KmsKeyArn when given, else SSE-S3), TLS only, kept, named
// without a reference to anything of the stack; the one S3 event (objects
// created under incoming/, to CampaignsFunction); the runner on its
// schedule of every minute, retried by neither EventBridge nor Lambda,
// without reserved concurrency; and no circular dependency among the
// resources, as SAM wires the event sources (the bucket's notification
// refers to the function it invokes).
func checkCampaigns(in *input) error {
	var e errs
	params := getMap(in.tpl, "Parameters")
	for _, p := range []struct {
		name     string
		def, min float64
	}{{"WxpayRateLimit", 30, 1}, {"WxpayApiReserve", 10, 0}} {
		d := getMap(params, p.name)
		def, okD := in.number(d["Default"])
		lo, okM := in.number(d["MinValue"])
		if d["Type"] != "Number" || !okD || def != p.def || !okM || lo != p.min {
			e.add("parameter %s: Type %v, Default %v, MinValue %v; want Number, %v, %v", p.name, d["Type"], d["Default"], d["MinValue"], p.def, p.min)
		}
	}
	// CloudFormation's Rules cannot compare numbers: the defaults at least
	// leave the campaigns room (WxpayRateLimit - WxpayApiReserve > 0).
	limit, _ := in.number(getMap(params, "WxpayRateLimit")["Default"])
	reserve, _ := in.number(getMap(params, "WxpayApiReserve")["Default"])
	if reserve >= limit {
		e.add("parameters: WxpayApiReserve's default %v is not below WxpayRateLimit's %v: campaigns could never send", reserve, limit)
	}

	// The table.
	if r := resource(in, campaignTableID); r["Type"] != "AWS::DynamoDB::Table" {
		e.add("%s: missing or not an AWS::DynamoDB::Table (%v)", campaignTableID, r["Type"])
	} else {
		for _, k := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
			if r[k] != "Retain" {
				e.add("%s: %s is %v, want Retain", campaignTableID, k, r[k])
			}
		}
		p := props(in, campaignTableID)
		if p["BillingMode"] != "PAY_PER_REQUEST" {
			e.add("%s: BillingMode %v, want PAY_PER_REQUEST", campaignTableID, p["BillingMode"])
		}
		if v := getMap(p, "PointInTimeRecoverySpecification")["PointInTimeRecoveryEnabled"]; !isTrue(v) {
			e.add("%s: point-in-time recovery %v, want true", campaignTableID, v)
		}
		sse := getMap(p, "SSESpecification")
		if !isTrue(sse["SSEEnabled"]) || sse["SSEType"] != "KMS" {
			e.add("%s: SSESpecification %v, want SSEEnabled, SSEType KMS", campaignTableID, sse)
		}
		if k, ok := sse["KMSMasterKeyId"]; ok {
			e.add("%s: KMSMasterKeyId %v: the AWS managed key, as the ledger (the send functions' roles grant no KMS key for DynamoDB)", campaignTableID, k)
		}
		if !isTrue(p["DeletionProtectionEnabled"]) {
			e.add("%s: DeletionProtectionEnabled %v, want true", campaignTableID, p["DeletionProtectionEnabled"])
		}
		if v, ok := p["TimeToLiveSpecification"]; ok {
			e.add("%s: TimeToLiveSpecification %v: campaigns are never deleted", campaignTableID, v)
		}
		wantDefs := []any{map[string]any{"AttributeName": "id", "AttributeType": "S"}}
		wantKey := []any{map[string]any{"AttributeName": "id", "KeyType": "HASH"}}
		if !reflect.DeepEqual(p["AttributeDefinitions"], wantDefs) || !reflect.DeepEqual(p["KeySchema"], wantKey) {
			e.add("%s: AttributeDefinitions %v, KeySchema %v; want HASH id (S) alone", campaignTableID, p["AttributeDefinitions"], p["KeySchema"])
		}
		for _, k := range []string{"GlobalSecondaryIndexes", "LocalSecondaryIndexes"} {
			if v, ok := p[k]; ok {
				e.add("%s: %s %v, want none", campaignTableID, k, v)
			}
		}
	}

	// The bucket.
	if r := resource(in, campaignBucketID); r["Type"] != "AWS::S3::Bucket" {
		e.add("%s: missing or not an AWS::S3::Bucket (%v)", campaignBucketID, r["Type"])
	} else {
		for _, k := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
			if r[k] != "Retain" {
				e.add("%s: %s is %v, want Retain (campaign files and reports are records of payments)", campaignBucketID, k, r[k])
			}
		}
		p := props(in, campaignBucketID)
		pab := getMap(p, "PublicAccessBlockConfiguration")
		for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
			if !isTrue(pab[k]) {
				e.add("%s: PublicAccessBlockConfiguration.%s %v, want true", campaignBucketID, k, pab[k])
			}
		}
		if v := getMap(p, "VersioningConfiguration")["Status"]; v != "Enabled" {
			e.add("%s: versioning %v, want Enabled", campaignBucketID, v)
		}
		if v := getMap(p, "OwnershipControls")["Rules"]; !reflect.DeepEqual(v, []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}) {
			e.add("%s: OwnershipControls.Rules %v, want BucketOwnerEnforced (ACLs disabled)", campaignBucketID, v)
		}
		sse, _ := getMap(p, "BucketEncryption")["ServerSideEncryptionConfiguration"].([]any)
		var byDefault any
		if len(sse) == 1 {
			byDefault = getMap(sse[0].(map[string]any), "ServerSideEncryptionByDefault")
		}
		ifv, ok := fnIf(byDefault)
		conds := getMap(in.tpl, "Conditions")
		if !ok || !slices.Contains(refsIn(conds[fmt.Sprint(ifv[0])]), "KmsKeyArn") ||
			!reflect.DeepEqual(ifv[1], map[string]any{"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": map[string]any{"Ref": "KmsKeyArn"}}) ||
			!reflect.DeepEqual(ifv[2], map[string]any{"SSEAlgorithm": "AES256"}) {
			e.add("%s: default encryption %v, want !If [<KmsKeyArn given>, aws:kms with !Ref KmsKeyArn, AES256]", campaignBucketID, getMap(p, "BucketEncryption"))
		}
		// The name: no reference to a resource (see CampaignBucket's
		// comment), lower case, at most 63 characters in the longest
		// region name.
		name, vars, ok := bucketNameSub(in)
		if !ok {
			e.add("%s: BucketName %v, want !Sub [<name>, <variables>] derived from the account, region and stack id", campaignBucketID, p["BucketName"])
		} else {
			for _, r := range append(refsIn(vars), subNames(name)...) {
				if _, isRes := resources(in)[r]; isRes {
					e.add("%s: BucketName refers to %s: the bucket's notification refers to %s, so a reference here would close a circle", campaignBucketID, r, campaignsID)
				}
			}
			// Only the account, the region and the variables, from the
			// stack id (lower-case hex): a stack name may have capitals.
			vm, _ := vars.(map[string]any)
			for _, n := range subNames(name) {
				if _, own := vm[n]; !own && n != "AWS::AccountId" && n != "AWS::Region" {
					e.add("%s: BucketName uses ${%s}; want only ${AWS::AccountId}, ${AWS::Region} and parts of AWS::StackId", campaignBucketID, n)
				}
			}
			if r := refsIn(vars); len(vm) == 0 || slices.ContainsFunc(r, func(x string) bool { return x != "AWS::StackId" }) {
				e.add("%s: BucketName's variables %v, want parts of AWS::StackId only", campaignBucketID, vars)
			}
			longest := subVarRE.ReplaceAllStringFunc(name, func(m string) string {
				switch m {
				case "${AWS::AccountId}":
					return "123456789012"
				case "${AWS::Region}":
					return "ap-southeast-5"
				}
				return "abcdef012345" // the last group of the stack id
			})
			if len(longest) > 63 || strings.ToLower(longest) != longest {
				e.add("%s: BucketName %q: %q is not a valid bucket name (lower case, at most 63)", campaignBucketID, name, longest)
			}
		}
	}

	// TLS only.
	denied := false
	for _, id := range in.ofType("AWS::S3::BucketPolicy") {
		p := props(in, id)
		if !isRef(p["Bucket"], campaignBucketID) {
			continue
		}
		sts, _ := getMap(p, "PolicyDocument")["Statement"].([]any)
		for _, st := range sts {
			sm, _ := st.(map[string]any)
			res := sm["Resource"]
			all := reflect.DeepEqual(res, []any{map[string]any{"Fn::GetAtt": []any{campaignBucketID, "Arn"}}, map[string]any{"Fn::Sub": "${" + campaignBucketID + ".Arn}/*"}})
			if sm["Effect"] == "Deny" && sm["Principal"] == "*" && sm["Action"] == "s3:*" && all &&
				fmt.Sprint(getMap(getMap(sm, "Condition"), "Bool")["aws:SecureTransport"]) == "false" {
				denied = true
			}
		}
	}
	if !denied {
		e.add("%s: no bucket policy denying s3:* to * on the bucket and its objects when aws:SecureTransport is false", campaignBucketID)
	}

	// The one S3 event.
	var s3Events []string
	for _, id := range in.ofType("AWS::Serverless::Function") {
		for name, ev := range events(in, id) {
			evm, _ := ev.(map[string]any)
			if evm["Type"] != "S3" {
				continue
			}
			s3Events = append(s3Events, id+"."+name)
			p := getMap(evm, "Properties")
			rules, _ := getMap(getMap(p, "Filter"), "S3Key")["Rules"].([]any)
			wantRules := []any{map[string]any{"Name": "prefix", "Value": campaignPrefix}}
			if id != campaignsID || !isRef(p["Bucket"], campaignBucketID) || p["Events"] != campaignS3Event || !reflect.DeepEqual(rules, wantRules) {
				e.add("%s: S3 event %s: Bucket %v, Events %v, rules %v; want %s on !Ref %s, %s, prefix %s", id, name, p["Bucket"], p["Events"], rules, campaignsID, campaignBucketID, campaignS3Event, campaignPrefix)
			}
		}
	}
	if len(s3Events) != 1 {
		e.add("S3 events %v, want one: %s's, on %s", s3Events, campaignsID, campaignBucketID)
	}

	// The runner.
	f := campaignRunID
	var sched []map[string]any
	for _, ev := range events(in, f) {
		if evm, _ := ev.(map[string]any); evm["Type"] == "Schedule" {
			sched = append(sched, getMap(evm, "Properties"))
		}
	}
	if len(sched) != 1 {
		e.add("%s: %d Schedule events, want one", f, len(sched))
	} else {
		p := sched[0]
		if p["Schedule"] != "rate(1 minute)" {
			e.add("%s: Schedule %v, want rate(1 minute)", f, p["Schedule"])
		}
		if v, ok := p["Enabled"]; ok && !isTrue(v) {
			e.add("%s: schedule Enabled %v: no campaign would run", f, v)
		}
		for _, k := range []string{"Input", "InputPath", "InputTransformer", "State"} {
			if v, ok := p[k]; ok {
				e.add("%s: schedule %s %v", f, k, v)
			}
		}
		if n, ok := in.number(getMap(p, "RetryPolicy")["MaximumRetryAttempts"]); !ok || n != 0 {
			e.add("%s: schedule RetryPolicy.MaximumRetryAttempts %v, want 0 (the next run comes with the schedule)", f, getMap(p, "RetryPolicy")["MaximumRetryAttempts"])
		}
	}
	eic := getMap(props(in, f), "EventInvokeConfig")
	if n, ok := in.number(eic["MaximumRetryAttempts"]); !ok || n != 0 {
		e.add("%s: EventInvokeConfig.MaximumRetryAttempts %v, want 0", f, eic["MaximumRetryAttempts"])
	}
	if v := props(in, f)["ReservedConcurrentExecutions"]; !isNoValue(v) {
		e.add("%s: ReservedConcurrentExecutions %v, want !Ref AWS::NoValue (the lease keeps one runner per campaign)", f, v)
	}

	if c := dependencyCycle(in); c != nil {
		e.add("circular dependency: %v", c)
	}
	return e.err()
}

// subNames lists the names a Fn::Sub string refers to (${Name},
// ${Name.Attr}), without the ${!Literal}s.
func subNames(s string) []string {
	var out []string
	for _, m := range subNameRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// dependencyCycle returns a cycle among the template's resources, or nil:
// a resource depends on what it refers to (Ref, GetAtt, Sub, DependsOn), a
// function also on what the Globals' function properties refer to, and an
// event source on the function it invokes (SAM puts an S3 event into the
// bucket's notification and an Api event into the API's body), not the
// other way round.
func dependencyCycle(in *input) []string {
	deps := map[string][]string{}
	add := func(from string, v any) {
		for _, r := range refsAndSubs(v) {
			if _, ok := resources(in)[r]; ok {
				deps[from] = append(deps[from], r)
			}
		}
	}
	for id := range resources(in) {
		r := resource(in, id)
		add(id, r["DependsOn"])
		if _, ok := r["DependsOn"].(string); ok {
			deps[id] = append(deps[id], r["DependsOn"].(string))
		}
		p := maps.Clone(props(in, id))
		if r["Type"] == "AWS::Serverless::Function" {
			for _, ev := range events(in, id) {
				evm, _ := ev.(map[string]any)
				ep := getMap(evm, "Properties")
				switch evm["Type"] {
				case "S3":
					if b, ok := ref(ep["Bucket"]); ok {
						deps[b] = append(deps[b], id)
					}
				case "Api":
					if a, ok := ref(ep["RestApiId"]); ok {
						deps[a] = append(deps[a], id)
					}
				}
			}
			delete(p, "Events")
			add(id, globalsFn(in))
		}
		add(id, p)
	}
	state := map[string]int{} // 1 on the path, 2 done
	var path []string
	var visit func(string) []string
	visit = func(n string) []string {
		switch state[n] {
		case 1:
			i := slices.Index(path, n)
			return append(slices.Clone(path[i:]), n)
		case 2:
			return nil
		}
		state[n] = 1
		path = append(path, n)
		for _, d := range deps[n] {
			if c := visit(d); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		state[n] = 2
		return nil
	}
	for _, id := range slices.Sorted(maps.Keys(resources(in))) {
		if c := visit(id); c != nil {
			return c
		}
	}
	return nil
}

// refsAndSubs lists what v refers to: Refs, GetAtts, the names in Fn::Sub
// strings (less a list form's own variables) and DependsOn strings.
func refsAndSubs(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
		case map[string]any:
			if s, ok := ref(x); ok {
				out = append(out, s)
				return
			}
			if l, ok := x["Fn::GetAtt"].([]any); ok && len(l) == 2 {
				s, _ := l[0].(string)
				out = append(out, s)
				return
			}
			switch sub := x["Fn::Sub"].(type) {
			case string:
				out = append(out, subNames(sub)...)
				return
			case []any:
				if len(sub) == 2 {
					s, _ := sub[0].(string)
					vars := getMap(map[string]any{"v": sub[1]}, "v")
					for _, n := range subNames(s) {
						if _, own := vars[n]; !own {
							out = append(out, n)
						}
					}
					walk(sub[1])
					return
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}
