package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/rowcast/rowcast/config"
	"github.com/rowcast/rowcast/internal/obs"
)

// commandEnv is what the subcommands share: a flag set with --config (and,
// for the commands that log, --log-format and --log-level), and the config
// and logger they set up from it.
type commandEnv struct {
	fs     *flag.FlagSet
	path   string    // --config
	master string    // --master: one master's unit of a master-master topology
	logs   *logFlags // nil: the command does not log
	stderr io.Writer
	// wholeSet lets the command run on a master-master config without
	// --master (it looks at every master: status, config validate).
	wholeSet bool
}

// newCommand makes a subcommand's flag set with --config; logLevel, when not
// "", adds the log flags with that default level. The command registers its
// own flags on env.fs before setup.
func newCommand(name, synopsis, logLevel string, stderr io.Writer) *commandEnv {
	env := &commandEnv{fs: newFlags(name, synopsis, stderr), stderr: stderr}
	env.fs.StringVar(&env.path, "config", "", "configuration file (YAML)")
	env.fs.StringVar(&env.master, "master", "", "master-master topology: the master whose unit (its reader, its topic and the sinks that apply it) to act on")
	if logLevel != "" {
		env.logs = &logFlags{}
		env.logs.register(env.fs, logLevel)
	}
	return env
}

// setup parses args, runs check (the command's own flags; nil: none), loads
// the config file and builds the logger (a no-op one for a command that does
// not log).
func (e *commandEnv) setup(args []string, check func() error) (*config.Config, zerolog.Logger, error) {
	nop := zerolog.Nop()
	if err := parseFlags(e.fs, args); err != nil {
		return nil, nop, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, nop, err
		}
	}
	cfg, err := loadConfig(e.path)
	if err == nil {
		cfg, err = e.unit(cfg)
	}
	if err != nil || e.logs == nil {
		return cfg, nop, err
	}
	log, err := e.logs.logger(e.stderr)
	return cfg, log, err
}

// unit is the config the command acts on: in a master-master topology, the
// unit of the master --master names.
func (e *commandEnv) unit(cfg *config.Config) (*config.Config, error) {
	switch {
	case e.master != "":
		c, err := cfg.ForMaster(e.master)
		if err != nil {
			return nil, usageError("%v", err)
		}
		return c, nil
	case cfg.MasterMaster() && !e.wholeSet:
		return nil, usageError("the config's topology is master-master: name the master whose unit to act on, --master %s (one of %s)",
			cfg.Masters[0], strings.Join(cfg.Masters, ", "))
	}
	return cfg, nil
}

// requireFlag is a check that refuses an empty flag value with msg.
func requireFlag(value *string, msg string) func() error {
	return func() error {
		if *value == "" {
			return usageError("%s", msg)
		}
		return nil
	}
}

// usageError is an error of the command line: exit code 2.
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// withCode gives err the exit code code, unless it has one already (or is
// a request for help).
func withCode(code int, err error) error {
	var ee *exitError
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: code, err: err}
}

// loadConfig loads the file a --config flag names.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usageError("--config is required, e.g. --config deployments/local/rowcast.yaml")
	}
	return config.Load(path)
}

// logFlags are the logging flags of every long-running command.
type logFlags struct{ format, level string }

// register adds --log-format and --log-level (default level given) to fs.
func (l *logFlags) register(fs *flag.FlagSet, level string) {
	fs.StringVar(&l.format, "log-format", "", "json or console (default: console on a terminal, else json)")
	fs.StringVar(&l.level, "log-level", level, "debug, info, warn or error")
}

func (l *logFlags) logger(w io.Writer) (zerolog.Logger, error) {
	if w == nil {
		w = os.Stderr
	}
	log, err := obs.NewLogger(w, l.format, l.level)
	if err == nil {
		// go-sql-driver prints connection trouble ("closing bad idle
		// connection") on stderr by itself; route it into our log.
		drv := log.With().Str("component", "mysql-driver").Logger()
		mysql.SetLogger(mysql.Logger(driverLogger{drv}))
	}
	return log, err
}

// driverLogger adapts zerolog to go-sql-driver's Logger.
type driverLogger struct{ log zerolog.Logger }

func (d driverLogger) Print(v ...any) { d.log.Warn().Msg(fmt.Sprint(v...)) }
