package vrrp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// splitCommand splits a command line into words the way keepalived does:
// on blanks, with single and double quotes grouping words. No shell runs.
func splitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}

// scriptRunner runs track and notify scripts as a given user, after
// checking them as keepalived's enable_script_security does.
type scriptRunner struct {
	security bool
	cred     *syscall.Credential // nil: run as ourselves
}

func newScriptRunner(security bool, userName string) (*scriptRunner, error) {
	r := &scriptRunner{security: security}
	if userName == "" || userName == "root" {
		return r, nil
	}
	cred, err := lookupCredential(userName)
	if err != nil {
		return nil, err
	}
	r.cred = cred
	return r, nil
}

func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("vrrp: script user %s: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("vrrp: script user %s: non-numeric uid/gid", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// prepare resolves a command line to an argv and applies the security check.
func (r *scriptRunner) prepare(command string, cred *syscall.Credential) ([]string, error) {
	argv, err := splitCommand(command)
	if err != nil {
		return nil, err
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("vrrp: script %q: %w", argv[0], err)
	}
	if r.security {
		runsAsRoot := cred == nil || cred.Uid == 0
		if err := checkScriptSecurity(path, runsAsRoot); err != nil {
			return nil, err
		}
	}
	argv[0] = path
	return argv, nil
}

// checkScriptSecurity refuses a script that a non-root user could change
// when it runs as root: the file or any directory above it writable by a
// user other than root (owner non-root with write bit, or group/other write).
func checkScriptSecurity(path string, runsAsRoot bool) error {
	if !runsAsRoot {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("vrrp: script %s: %w", path, err)
	}
	for p := real; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("vrrp: script %s: %w", path, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			mode := fi.Mode()
			sticky := mode&os.ModeSticky != 0 && fi.IsDir()
			if st.Uid != 0 && mode&0o200 != 0 ||
				st.Gid != 0 && mode&0o020 != 0 && !sticky ||
				mode&0o002 != 0 && !sticky {
				return fmt.Errorf("vrrp: script %s is not secure: %s is writable by a non-root user (enable_script_security)", path, p)
			}
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

// run executes argv with a timeout and returns its error (nil on exit 0).
func (r *scriptRunner) run(ctx context.Context, argv []string, cred *syscall.Credential, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cred == nil {
		cred = r.cred
	}
	if cred != nil {
		cmd.SysProcAttr.Credential = cred
	}
	// Kill the whole process group on timeout, so a script's children go too.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %s", timeout)
	}
	return err
}
