# Build, test and lint entry points. SAM calls the build-<LogicalId> targets
# (template.yaml: Metadata BuildMethod makefile, CodeUri .) with ARTIFACTS_DIR
# set; everything else is for people and CI (.ci/run).

GO ?= go
STATICCHECK_VERSION = v0.8.2

# Lambda: provided.al2023, static binary named bootstrap, for the
# template's Architecture parameter: arm64 (the default) or x86_64. Pass the
# same one to both, e.g. `make build ARCH=x86_64`, or under SAM
# `ARCH=x86_64 sam build` and `sam deploy --parameter-overrides
# Architecture=x86_64` (sam build runs these targets with the caller's
# environment). GOARCH=amd64 on the command line works too.
ARCH ?= arm64
GOARCH_arm64 = arm64
GOARCH_x86_64 = amd64
GOARCH = $(or $(GOARCH_$(ARCH)),$(error ARCH=$(ARCH): want arm64 or x86_64, the template's Architecture values))
LAMBDA_ENV = CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH)
LAMBDA_BUILD = $(GO) build -tags lambda.norpc -trimpath -ldflags "-s -w"

# `make build` writes bin/<name>/bootstrap.
BIN = bin

# `make local-ca`: CA certificate of the local WeChat Pay simulator, copied
# into each SAM build so that SSL_CERT_FILE=/var/task/local-ca.pem (see
# env/local.json) finds it inside the `sam local` container.
LOCAL_CA = .local/ca.pem
SAM_BUILD_DIR = .aws-sam/build

.PHONY: build build-SendGroupFunction build-SendMiniFunction build-SendFunction \
	build-QueryFunction build-ReconcileFunction build-CampaignsFunction build-CampaignRunFunction test fuzz bench soak campaign-soak run serve lint fmt-check vet staticcheck cfn \
	local-ca clean

build-SendGroupFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo 'ARTIFACTS_DIR is not set (sam build sets it; make build sets bin/<name>)'; exit 1; }
	mkdir -p $(ARTIFACTS_DIR)
	$(LAMBDA_ENV) $(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/sendgroup

build-SendMiniFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo 'ARTIFACTS_DIR is not set (sam build sets it; make build sets bin/<name>)'; exit 1; }
	mkdir -p $(ARTIFACTS_DIR)
	$(LAMBDA_ENV) $(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/sendmini

build-SendFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo 'ARTIFACTS_DIR is not set (sam build sets it; make build sets bin/<name>)'; exit 1; }
	mkdir -p $(ARTIFACTS_DIR)
	$(LAMBDA_ENV) $(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/send

build-QueryFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo 'ARTIFACTS_DIR is not set (sam build sets it; make build sets bin/<name>)'; exit 1; }
	mkdir -p $(ARTIFACTS_DIR)
	$(LAMBDA_ENV) $(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/query

build-ReconcileFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo 'ARTIFACTS_DIR is not set (sam build sets it; make build sets bin/<name>)'; exit 1; }
	mkdir -p $(ARTIFACTS_DIR)
	$(LAMBDA_ENV) $(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/reconcile

build-CampaignsFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo 'ARTIFACTS_DIR is not set (sam build sets it; make build sets bin/<name>)'; exit 1; }
	mkdir -p $(ARTIFACTS_DIR)
	$(LAMBDA_ENV) $(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/campaigns

build-CampaignRunFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo 'ARTIFACTS_DIR is not set (sam build sets it; make build sets bin/<name>)'; exit 1; }
	mkdir -p $(ARTIFACTS_DIR)
	$(LAMBDA_ENV) $(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/campaignrun

build:
	$(MAKE) build-SendGroupFunction ARTIFACTS_DIR=$(BIN)/sendgroup
	$(MAKE) build-SendMiniFunction ARTIFACTS_DIR=$(BIN)/sendmini
	$(MAKE) build-SendFunction ARTIFACTS_DIR=$(BIN)/send
	$(MAKE) build-QueryFunction ARTIFACTS_DIR=$(BIN)/query
	$(MAKE) build-ReconcileFunction ARTIFACTS_DIR=$(BIN)/reconcile
	$(MAKE) build-CampaignsFunction ARTIFACTS_DIR=$(BIN)/campaigns
	$(MAKE) build-CampaignRunFunction ARTIFACTS_DIR=$(BIN)/campaignrun

# The race detector needs cgo and a C compiler; without them (a bare Go
# install) the tests run without it. CI's machines have both.
RACE ?= $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)

test:
	$(GO) test $(RACE) -count=1 ./...

# A short run of every fuzz target (each seeded from testdata/fuzz and its
# f.Add seeds). The default bound is a count, not a duration: with a
# duration, Go 1.26's fuzz coordinator can fail a run that found nothing
# ("context deadline exceeded" at the deadline, golang/go#75804).
# FUZZTIME=2000000x make fuzz for a longer one.
FUZZTIME ?= 20000x
FUZZ_TARGETS = \
	./pkg/wxpay:FuzzDecodeXML \
	./pkg/wxpay:FuzzDecodeXMLRecords \
	./pkg/wxpay:FuzzFastDecodeMatchesSlow \
	./pkg/wxpay:FuzzValidateSendMini \
	./internal/handler:FuzzInvoke \
	./internal/handler:FuzzDecodeRequest

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1000x $$pkg || exit 1; \
	done

# The benchmarks whose figures README.md reports.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/wxpay/ ./internal/handler/ ./functions/

# The soak (functions/soak_test.go: red packets through the real
# bootstraps with faults of every kind, the reconciler until each is at its
# end, the ledger against the simulator's books) at 2,000 red packets, its
# figures printed; make test runs it at 60. SOAK_SEED=n draws other faults
# and claims. It needs moto_server (CI=true fails without it).
SOAK_N ?= 2000

soak:
	SOAK_N=$(SOAK_N) $(GO) test -count=1 -v -timeout 60m -run '^TestSoak$$' ./functions/

# The campaign soak (internal/campaign/soak_test.go: a campaign at the
# default rate against the simulator's 30 a second, unknowns, claims and
# refunds, the reconciler until every row ends) at 10,000 rows, about 9
# minutes; its achieved rate must be within 5% of the configured 20 a
# second. make test runs it at 100 rows.
CAMPAIGN_N ?= 10000

campaign-soak:
	CAMPAIGN_N=$(CAMPAIGN_N) $(GO) test -count=1 -v -timeout 60m -run '^TestCampaignSoak$$' ./internal/campaign/

run:
	$(GO) run ./cmd/local run $(ARGS)

serve:
	$(GO) run ./cmd/local serve $(ARGS)

lint: fmt-check vet staticcheck

fmt-check:
	@files=$$(find . -name '*.go' -not -path './.*' -not -path './bin/*' -not -path '*/testdata/*'); \
	if [ -z "$$files" ]; then exit 0; fi; \
	out=$$(gofmt -l $$files); \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# cfn-lint for a global and a China region, then the SAM translator and
# cfn-lint for every parameter combination (deploy/sam_transform.py).
cfn:
	cfn-lint --regions us-east-1 cn-north-1 -- template.yaml
	python3 deploy/sam_transform.py

local-ca:
	@if [ ! -f "$(LOCAL_CA)" ]; then echo "local-ca: $(LOCAL_CA) not found (set LOCAL_CA=path/to/simulator-ca.pem)"; exit 1; fi
	@found=0; for d in $(SAM_BUILD_DIR)/*Function; do \
		if [ -d "$$d" ]; then cp "$(LOCAL_CA)" "$$d/local-ca.pem"; echo "copied $(LOCAL_CA) -> $$d/local-ca.pem"; found=1; fi; \
	done; \
	if [ "$$found" = 0 ]; then echo "local-ca: no function builds under $(SAM_BUILD_DIR); run sam build first"; exit 1; fi

clean:
	rm -rf $(BIN) .aws-sam
