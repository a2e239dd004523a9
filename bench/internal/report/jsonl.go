package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// WriteJSONL writes recs to path as JSON Lines: one Record object per line,
// in the order given. The file is replaced atomically (see writeFileAtomic).
//
// JSON has no NaN or infinities, so a record with such a metric value is an
// error naming that record rather than a silently altered number.
func WriteJSONL(path string, recs []Record) error {
	return writeFileAtomic(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // case names like "a<b" stay readable
		for i := range recs {
			r := &recs[i]
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("record %d (seq %d, %s/%s/%s): %w", i, r.Seq, r.Scenario, r.Case, r.Peer, err)
			}
		}
		return nil
	})
}

// ReadJSONL reads a file written by WriteJSONL. Blank lines are ignored;
// anything else that is not one Record object is an error naming the file
// and the 1-based line number. Unknown fields are accepted, so files from a
// newer orchestrator still load.
func ReadJSONL(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	defer f.Close()

	// bufio.Reader rather than Scanner: a ping record with every RTT is one
	// long line, and Scanner would fail on it past its token limit.
	br := bufio.NewReader(f)
	var recs []Record
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read records: %s:%d: %w", path, line, err)
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			if t[0] != '{' { // "null" or "[...]" would decode without error
				return nil, fmt.Errorf("read records: %s:%d: not a JSON object", path, line)
			}
			var r Record
			if err := json.Unmarshal(t, &r); err != nil {
				return nil, fmt.Errorf("read records: %s:%d: %w", path, line, err)
			}
			recs = append(recs, r)
		}
		if err != nil { // io.EOF, after the last (possibly unterminated) line
			return recs, nil
		}
	}
}
