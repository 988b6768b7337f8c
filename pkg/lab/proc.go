package lab

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc identifies a process the lab started: its PID and its start time in
// clock ticks since boot, so a recycled PID is never mistaken for it.
type Proc struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces and parentheses; fields after
	// the last ')' are fixed. starttime is field 22 overall.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// procOf records a just-started process.
func procOf(pid int) Proc {
	st, _ := procStartTime(pid)
	return Proc{PID: pid, StartTime: st}
}

// Alive reports whether the recorded process still runs (zombies count as gone).
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, err := procStartTime(p.PID)
	if err != nil || st != p.StartTime {
		return false
	}
	return procState(p.PID) != "Z"
}

// Stop sends SIGTERM to the process (and its process group, which the lab
// gave it with setsid), waits up to grace, then sends SIGKILL. It only ever
// signals the process it recorded.
func (p Proc) Stop(grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	signal := func(sig syscall.Signal) {
		// The group first: pod commands may have children.
		syscall.Kill(-p.PID, sig)
		syscall.Kill(p.PID, sig)
	}
	signal(syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	signal(syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if !p.Alive() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("process " + strconv.Itoa(p.PID) + " did not exit after SIGKILL")
}
