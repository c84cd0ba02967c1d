package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The executable's pages are released (releaseExecPages) once the first
// configuration runs, which is checked every execPagesPoll, or after
// execPagesMaxWait when none runs by then.
const (
	execPagesPoll    = 100 * time.Millisecond
	execPagesMaxWait = 2 * time.Minute
)

// execMapping is a read-only mapping of the executable (code, read-only
// data, the function tables) in /proc/self/maps.
type execMapping struct {
	start, end uintptr
	perms      string
}

// execMappings returns the read-only mappings of the file exe in a
// /proc/PID/maps listing. Writable mappings (the data segment, whose
// written pages are private copies) are left out.
func execMappings(maps io.Reader, exe string) ([]execMapping, error) {
	var out []execMapping
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		// address perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || len(f[1]) < 4 || f[1][1] == 'w' || f[1][0] != 'r' || strings.Join(f[5:], " ") != exe {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps: bad address range %q", f[0])
		}
		start, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("maps: bad address range %q: %w", f[0], err)
		}
		end, err := strconv.ParseUint(hi, 16, 64)
		if err != nil || end <= start {
			return nil, fmt.Errorf("maps: bad address range %q", f[0])
		}
		out = append(out, execMapping{start: uintptr(start), end: uintptr(end), perms: f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("maps: %w", err)
	}
	return out, nil
}

// rssKB returns a field of /proc/self/status (e.g. "RssFile:") in KiB, or
// -1.
func rssKB(status, field string) int64 {
	_, rest, ok := strings.Cut(status, field)
	if !ok {
		return -1
	}
	line, _, _ := strings.Cut(rest, "\n")
	v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(line), " kB"), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// scheduleExecPagesRelease releases the executable's resident pages
// (releaseExecPages) once running reports that the first configuration
// runs, unless SENTINEL_EXEC_PAGES=keep. It returns a function that
// cancels the release if it has not happened yet, nil when kept.
func scheduleExecPagesRelease(lookupEnv func(string) (string, bool), running func() bool, logger *zap.Logger) (cancel func()) {
	switch v, _ := lookupEnv("SENTINEL_EXEC_PAGES"); v {
	case "", "release":
	case "keep":
		logger.Info("executable's pages kept resident (SENTINEL_EXEC_PAGES=keep)")
		return nil
	default:
		logger.Warn("SENTINEL_EXEC_PAGES: want release or keep; releasing", zap.String("SENTINEL_EXEC_PAGES", v))
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(execPagesPoll)
		defer t.Stop()
		deadline := time.Now().Add(execPagesMaxWait)
		for !running() && time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
		releaseExecPages(logger)
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop) }) }
}

// batchExecPagesMin is the configuration size from which a batch command
// (adapt, validate) releases the executable's pages before adapting.
const batchExecPagesMin = 16 << 20

// releaseExecPagesForBatch releases the executable's resident pages
// (releaseExecPages) before a batch command adapts a configuration of
// size bytes, unless SENTINEL_EXEC_PAGES=keep or the configuration is
// small: what package initialisers touched (about 75 MiB of `adapt`'s
// peak RSS for 100,000 routes) is no longer counted at the adapter's
// peak; the adapter's own code is faulted back in. It reports whether it
// released them.
func releaseExecPagesForBatch(lookupEnv func(string) (string, bool), size int) bool {
	if v, _ := lookupEnv("SENTINEL_EXEC_PAGES"); v == "keep" || size < batchExecPagesMin {
		return false
	}
	releaseExecPages(zap.NewNop())
	return true
}

// releaseExecPages gives back the executable's resident read-only pages.
// Package initialisers and the configuration's loading touch code and
// data all over the binary once, and on kernels whose page cache holds
// files in large folios nearly the whole executable then stays resident
// (54 of the 66 MiB of an idle `sentinel run` started from disk,
// docs/runtime.md); what the requests use is faulted back in, the rest
// is no longer resident.
func releaseExecPages(logger *zap.Logger) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		logger.Debug("executable's pages kept", zap.Error(err))
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		logger.Debug("executable's pages kept", zap.Error(err))
		return
	}
	ms, err := execMappings(f, exe)
	f.Close()
	if err != nil || len(ms) == 0 {
		logger.Debug("executable's pages kept", zap.Error(err), zap.Int("mappings", len(ms)))
		return
	}
	before, _ := os.ReadFile("/proc/self/status")
	var errs []string
	for _, m := range ms {
		if err := adviseExec(m); err != nil {
			errs = append(errs, fmt.Sprintf("%x-%x %s: %v", m.start, m.end, m.perms, err))
		}
	}
	after, _ := os.ReadFile("/proc/self/status")
	logger.Info("executable's pages released",
		zap.Int64("rss_file_kib_before", rssKB(string(before), "RssFile:")),
		zap.Int64("rss_file_kib_after", rssKB(string(after), "RssFile:")),
		zap.Strings("errors", errs))
}
