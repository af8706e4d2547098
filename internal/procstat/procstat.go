// Package procstat reads a process's CPU time and memory from /proc: the
// render sandbox's memory watchdog, tests and the benchmarks use it.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stats are a process's CPU time and memory, from /proc.
type Stats struct {
	CPUSeconds         float64
	RSSMiB, PeakRSSMiB float64
}

// Read reads /proc/<pid>/stat and /proc/<pid>/status.
func Read(pid int) (Stats, error) {
	var s Stats
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name (which may hold spaces) start after ")".
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	if len(fields) < 13 {
		return s, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err := strconv.ParseFloat(fields[11], 64)
	if err != nil {
		return s, fmt.Errorf("/proc/%d/stat utime: %w", pid, err)
	}
	stime, err := strconv.ParseFloat(fields[12], 64)
	if err != nil {
		return s, fmt.Errorf("/proc/%d/stat stime: %w", pid, err)
	}
	s.CPUSeconds = (utime + stime) / 100 // USER_HZ
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		var kb float64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			_, _ = fmt.Sscan(strings.TrimPrefix(line, "VmRSS:"), &kb)
			s.RSSMiB = kb / 1024
		case strings.HasPrefix(line, "VmHWM:"):
			_, _ = fmt.Sscan(strings.TrimPrefix(line, "VmHWM:"), &kb)
			s.PeakRSSMiB = kb / 1024
		}
	}
	return s, nil
}
