package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// errSpoolFull is returned by spool.append when the line does not fit.
var errSpoolFull = errors.New("audit spool full")

// defaultSegmentBytes is the size after which a spool segment is closed
// and a new one started.
const defaultSegmentBytes = 4 << 20

// cursorFile holds the read position: everything before it was
// delivered.
const cursorFile = "cursor.json"

// position is a place in the spool: segment seq, byte offset.
type position struct {
	Seg uint64 `json:"segment"`
	Off int64  `json:"offset"`
}

// spool is a sink's bounded on-disk queue of NDJSON lines: segment files
// seg-<seq>.ndjson written in order and a cursor file. Lines are
// appended to the newest segment, read from the cursor, and segments
// behind the cursor are removed. A process (re)opening a spool starts a
// new segment, so a line cut by a crash stays at the end of an older
// segment, where the reader skips it. Delivery is at-least-once: the
// cursor moves only after a batch was delivered.
type spool struct {
	dir      string
	maxBytes int64
	segBytes int64

	mu      sync.Mutex
	segs    []uint64         // ascending
	sizes   map[uint64]int64 // bytes of each segment
	w       *os.File
	wseq    uint64
	cur     position
	pending int64 // bytes at or after the cursor
	dirty   bool  // lines written since the last sync
	notify  chan struct{}

	// readMu is held by a delivery from read to ack: during a reload
	// the old and new configs' deliveries take turns.
	readMu sync.Mutex
}

// setMax changes the bound (a reloaded config may change it).
func (s *spool) setMax(n int64) {
	s.mu.Lock()
	s.maxBytes = n
	s.mu.Unlock()
}

func segName(seq uint64) string { return fmt.Sprintf("seg-%020d.ndjson", seq) }

// openSpool opens (or creates) the spool in dir.
func openSpool(dir string, maxBytes, segBytes int64) (*spool, error) {
	if segBytes <= 0 {
		segBytes = defaultSegmentBytes
	}
	if maxBytes > 0 && segBytes > maxBytes/2 {
		segBytes = max(maxBytes/2, 1)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	s := &spool{dir: dir, maxBytes: maxBytes, segBytes: segBytes, sizes: map[uint64]int64{}, notify: make(chan struct{}, 1)}
	if b, err := os.ReadFile(filepath.Join(dir, cursorFile)); err == nil {
		if err := json.Unmarshal(b, &s.cur); err != nil {
			return nil, fmt.Errorf("audit spool %s: bad %s: %w", dir, cursorFile, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".ndjson") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".ndjson"), 10, 64)
		if err != nil {
			continue
		}
		if seq < s.cur.Seg {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("audit spool: %w", err)
		}
		s.segs = append(s.segs, seq)
		s.sizes[seq] = info.Size()
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i] < s.segs[j] })
	next := s.cur.Seg
	if n := len(s.segs); n > 0 {
		next = s.segs[n-1] + 1
	}
	if err := s.startSegment(next); err != nil {
		return nil, err
	}
	s.recount()
	return s, nil
}

// privateDir checks that dir, which MkdirAll leaves as it was when it
// existed, is the process's own: a real directory (not a symbolic link),
// owned by its user, that no other user may write in. Whoever else could
// write in it could swap the segments for files of their own (events
// sent to the sink as the proxy's). Its mode is never changed: the
// folder may be a system one named by mistake.
func privateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("audit spool: %s is not a directory (a symbolic link?): give the spool a folder of its own", dir)
	}
	if uid, ok := ownerOf(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("audit spool: %s belongs to user %d, not to this process's user (%d): give the spool a folder of its own", dir, uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("audit spool: %s is writable by other users (mode %04o): make it 0700, or let the proxy create it", dir, fi.Mode().Perm())
	}
	return nil
}

// startSegment opens segment seq for writing. Called with mu held (or
// before the spool is shared).
func (s *spool) startSegment(seq uint64) error {
	f, err := os.OpenFile(filepath.Join(s.dir, segName(seq)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	s.w, s.wseq = f, seq
	if _, ok := s.sizes[seq]; !ok {
		s.segs = append(s.segs, seq)
		s.sizes[seq] = 0
	}
	return nil
}

// recount computes pending. Called with mu held.
func (s *spool) recount() {
	s.pending = 0
	for _, seq := range s.segs {
		if seq >= s.cur.Seg {
			s.pending += s.sizes[seq]
		}
	}
	if _, ok := s.sizes[s.cur.Seg]; ok {
		s.pending -= s.cur.Off
	}
}

// bytes returns the bytes not yet delivered.
func (s *spool) bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// append writes line (ending in a newline). It returns errSpoolFull
// when the spool would exceed its bound.
func (s *spool) append(line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return errors.New("audit spool closed")
	}
	if s.maxBytes > 0 && s.pending+int64(len(line)) > s.maxBytes {
		return errSpoolFull
	}
	if err := s.write(line); err != nil {
		return err
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// write appends line to the write segment, starting a new one when it
// is full. Called with mu held.
func (s *spool) write(line []byte) error {
	if s.sizes[s.wseq] >= s.segBytes {
		if err := s.w.Sync(); err != nil {
			return fmt.Errorf("audit spool: %w", err)
		}
		_ = s.w.Close()
		if err := s.startSegment(s.wseq + 1); err != nil {
			s.w = nil
			return err
		}
	}
	n, err := s.w.Write(line)
	s.dirty = true
	s.sizes[s.wseq] += int64(n)
	s.pending += int64(n)
	if err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	return nil
}

// dropOldest removes the oldest undelivered segments until need more
// bytes fit, and returns the number of lines removed. The write segment
// is closed first if it is the only one.
func (s *spool) dropOldest(need int64) (dropped int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.maxBytes > 0 && s.pending+need > s.maxBytes {
		oldest := s.segs[0]
		if oldest == s.wseq {
			if s.sizes[oldest] == 0 {
				return dropped, errSpoolFull // a single line larger than the bound
			}
			_ = s.w.Close()
			if err := s.startSegment(s.wseq + 1); err != nil {
				s.w = nil
				return dropped, err
			}
		}
		name := filepath.Join(s.dir, segName(oldest))
		from := int64(0)
		if oldest == s.cur.Seg {
			from = s.cur.Off
		}
		dropped += countLines(name, from)
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return dropped, fmt.Errorf("audit spool: %w", err)
		}
		delete(s.sizes, oldest)
		s.segs = s.segs[1:]
		s.cur = position{Seg: s.segs[0]}
		if err := s.saveCursor(); err != nil {
			return dropped, err
		}
		s.recount()
	}
	return dropped, nil
}

func countLines(name string, from int64) int {
	f, err := os.Open(name)
	if err != nil {
		return 0
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0
	}
	n := 0
	buf := make([]byte, 64<<10)
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err != nil {
			return n
		}
	}
}

// read returns up to maxLines complete lines (about maxBytes at most,
// at least one line) from the cursor, and the position after them.
func (s *spool) read(maxLines int, maxBytes int64) ([][]byte, position, error) {
	s.mu.Lock()
	pos := s.cur
	segs := append([]uint64(nil), s.segs...)
	wseq := s.wseq
	sizes := make(map[uint64]int64, len(segs))
	for _, q := range segs {
		sizes[q] = s.sizes[q]
	}
	s.mu.Unlock()

	var lines [][]byte
	var total int64
	for _, seq := range segs {
		if seq < pos.Seg {
			continue
		}
		if seq > pos.Seg {
			pos = position{Seg: seq}
		}
		if pos.Off >= sizes[seq] {
			if seq == wseq {
				break
			}
			continue
		}
		f, err := os.Open(filepath.Join(s.dir, segName(seq)))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) { // dropped meanwhile
				continue
			}
			return lines, pos, fmt.Errorf("audit spool: %w", err)
		}
		r := bufio.NewReader(io.NewSectionReader(f, pos.Off, sizes[seq]-pos.Off))
		for len(lines) < maxLines && (total < maxBytes || len(lines) == 0) {
			line, err := r.ReadBytes('\n')
			if err != nil { // EOF: a line not complete (being written, or cut by a crash)
				break
			}
			pos.Off += int64(len(line))
			total += int64(len(line))
			lines = append(lines, line[:len(line)-1])
		}
		_ = f.Close()
		if len(lines) >= maxLines || total >= maxBytes || seq == wseq {
			break
		}
		// An older segment read to its end (a cut line is skipped).
		pos = position{Seg: seq + 1}
	}
	return lines, pos, nil
}

// ack records that everything before pos was delivered, and removes the
// segments behind it.
func (s *spool) ack(pos position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) > 0 && pos.Seg < s.segs[0] {
		return nil // dropped meanwhile: the cursor is already past it
	}
	if pos.Seg < s.cur.Seg || (pos.Seg == s.cur.Seg && pos.Off <= s.cur.Off) {
		return nil
	}
	s.cur = pos
	for len(s.segs) > 0 && s.segs[0] < pos.Seg && s.segs[0] != s.wseq {
		_ = os.Remove(filepath.Join(s.dir, segName(s.segs[0])))
		delete(s.sizes, s.segs[0])
		s.segs = s.segs[1:]
	}
	s.recount()
	return s.saveCursor()
}

// saveCursor writes the cursor file atomically. Called with mu held.
func (s *spool) saveCursor() error {
	b, _ := json.Marshal(s.cur)
	tmp := filepath.Join(s.dir, cursorFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, cursorFile)); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	return nil
}

// sync syncs the write segment to disk when lines were written since
// the last sync. The fsync runs without the lock (appends go on); a
// segment closed meanwhile was synced by its closing.
func (s *spool) sync() error {
	s.mu.Lock()
	f, dirty := s.w, s.dirty
	s.dirty = false
	s.mu.Unlock()
	if f == nil || !dirty {
		return nil
	}
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("audit spool: %w", err)
	}
	return nil
}

// close syncs and closes the write segment.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return nil
	}
	err := s.w.Sync()
	if cerr := s.w.Close(); err == nil {
		err = cerr
	}
	s.w = nil
	return err
}
