package reconcile

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestREADMESchedule: the README's schedule table is Schedule, row by row,
// so that what operators read is what the reconciler does.
func TestREADMESchedule(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(readme), "\n")
	for i, r := range Schedule {
		want := fmt.Sprintf("| %s | %s | %s | %s |", r.When, readmeWait(r.Wait), r.From, r.Rule)
		found := false
		for _, l := range lines {
			if l == want {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("README.md lacks the schedule's row %d:\n%s", i, want)
		}
	}
}

// readmeWait writes a wait as the README's table does.
func readmeWait(d time.Duration) string {
	switch {
	case d >= 7*24*time.Hour:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%d h", d/time.Hour)
	default:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
}
