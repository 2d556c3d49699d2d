package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks deploy/streamrelay.service with systemd-analyze
// verify, where systemd is installed; CI machines have none, so there it
// is skipped too.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found: the unit is not checked")
	}
	unit, err := os.ReadFile("deploy/streamrelay.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify insists that ExecStart's binary exists; on a test machine it
	// is not installed, so a stand-in at a temporary path takes its place.
	dir := t.TempDir()
	bin := filepath.Join(dir, "streamrelay")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const execStart = "ExecStart=/usr/local/bin/streamrelay\n"
	if !strings.Contains(string(unit), execStart) {
		t.Fatalf("the unit lacks %q", execStart)
	}
	path := filepath.Join(dir, "streamrelay.service")
	if err := os.WriteFile(path, []byte(strings.Replace(string(unit), execStart, "ExecStart="+bin+"\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
