package mysql

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// appendEscapedRef is appendEscaped one byte at a time.
func appendEscapedRef(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case 0:
			b = append(b, '\\', '0')
		default:
			b = append(b, c)
		}
	}
	return b
}

func TestAppendEscaped(t *testing.T) {
	strs := []string{"", "a", "\\", "plain text of more than eight bytes", "\x00", "tab\there", "é\u2028😀\x1f\x7f\xff",
		strings.Repeat("x", 7) + "\n" + strings.Repeat("y", 9) + "\r\\", "\x01\x02\x1e\x1f ", strings.Repeat("\\\t", 9)}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab \\\t\n\r\x00\x01\x1f\x20\x5b\x5c\x5d\x7f\x80\xc3\xa9\xff")
	for range 2000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		strs = append(strs, string(b))
	}
	for _, s := range strs {
		got := string(appendEscaped([]byte("pre"), s))
		if want := string(appendEscapedRef([]byte("pre"), s)); got != want {
			t.Fatalf("appendEscaped(%q) = %q, want %q", s, got, want)
		}
	}
}

func BenchmarkAppendEscaped(b *testing.B) {
	s := "Gh2 kLm9 Qr 7TzXv 0aBcD eF4 gHi5 JkL6 mN opQ8 rStU9 vWx 0Yz1 AbC2 dEf3 GhI4 jK"
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = appendEscaped(buf[:0], s)
	}
}
