package functions_test

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// maxBootstrapSize bounds a deployed bootstrap (linux/arm64, stripped):
// 12 MB, decimal.
const maxBootstrapSize = 12_000_000

// TestBinarySize builds the four bootstraps as `make build` does
// (provided.al2023 on arm64: CGO_ENABLED=0 GOOS=linux GOARCH=arm64, -tags
// lambda.norpc -trimpath -ldflags "-s -w") and checks their size.
func TestBinarySize(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	pkgs := make([]string, len(functionNames))
	for i, fn := range functionNames {
		pkgs[i] = "./functions/" + fn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// One go command for the four: the shared packages compile once.
	args := append([]string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build (linux/arm64): %v\n%s", err, out)
	}
	t.Logf("built %d linux/arm64 bootstraps in %v", len(pkgs), time.Since(start).Round(time.Millisecond))
	for _, fn := range functionNames {
		path := filepath.Join(dir, fn)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("%s: ELF machine %v, want EM_AARCH64", fn, f.Machine)
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s: has a symbol table; want a stripped binary (-s -w)", fn)
		}
		f.Close()
		size := fi.Size()
		t.Logf("%-9s linux/arm64 stripped: %d bytes (%.2f MB, %.2f MiB)", fn, size, float64(size)/1e6, float64(size)/(1<<20))
		if size > maxBootstrapSize {
			t.Errorf("%s: %d bytes, over the %d-byte budget", fn, size, maxBootstrapSize)
		}
	}
}
