package pipeline

// SkipRecord says that the reader left a source transaction out of the
// topic on an operator's request (`rowcast pipeline --skip-gtid`). It
// travels on a heartbeat, which every consumer already passes over, so that
// consumers that do not know it are not stopped by it; `rowcast status` and
// the topic's readers can show it.
type SkipRecord struct {
	// GTID is the transaction left out.
	GTID string `json:"gtid"`
	// Reason says who asked for the skip and why.
	Reason string `json:"reason"`
}

// skipRecord writes rowcast.skip.
func (w *msgWriter) skipRecord(b []byte) []byte {
	r := w.e.Skip
	b = append(b, `,"skip":{"gtid":`...)
	b = w.str(b, r.GTID, "skip gtid")
	b = append(b, `,"reason":`...)
	b = w.str(b, r.Reason, "skip reason")
	return append(b, '}')
}

// skipSection reads rowcast.skip of a heartbeat, when present.
func (d *msgDecoder) skipSection(e *Event) error {
	if d.skip.raw == nil || isJSONNull(d.skip.raw) {
		return nil
	}
	r := new(SkipRecord)
	s := d.skip.scan()
	l := s.object(nil)
	for s.more(&l) {
		var err error
		switch string(l.name) {
		case "gtid":
			r.GTID, err = s.str()
		case "reason":
			r.Reason, err = s.str()
		default:
			err = s.skip(1)
		}
		l.fail(err)
	}
	if l.err != nil {
		return prefixErr("skip", l.err)
	}
	e.Skip = r
	return nil
}
