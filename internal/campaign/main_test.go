package campaign_test

import (
	"os"
	"testing"

	"github.com/redpacket-lambda/wxredpack/internal/mototest"
)

// One moto_server for the test binary (DynamoDB and S3 tests share it;
// their tables and buckets have names of their own).
func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }
