package changelog

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Logger bridges kafka-go's Logger (its chatty progress messages) to
// log at debug level, for the Logger field of kafka-go's Reader, Writer,
// Dialer or ConsumerGroup configs. rowcast's own Producer and Consumer use
// kafka.Client, which logs nothing; they log their retries themselves.
func Logger(log zerolog.Logger) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		if e := log.Debug(); e.Enabled() {
			e.Str("component", "kafka-go").Msg(strings.TrimSpace(fmt.Sprintf(format, args...)))
		}
	})
}

// ErrorLogger bridges kafka-go's ErrorLogger to log at warn level:
// kafka-go reports there errors it retries itself.
func ErrorLogger(log zerolog.Logger) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		log.Warn().Str("component", "kafka-go").Msg(strings.TrimSpace(fmt.Sprintf(format, args...)))
	})
}
