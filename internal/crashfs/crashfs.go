// Package crashfs is a file system for tests that loses what a power cut
// loses. Mounted through FUSE, it passes every operation through to a
// real directory, so that a program on it reads back what it wrote, but
// it also keeps the state that would survive a power cut: a file's data
// as of its last fsync, a directory's entries as of its last fsync. Cut
// throws the rest away, as the page cache does when the power goes, and
// the directory then holds only what had been made durable: writes not
// synced are gone, files created or renamed into a directory that was
// not synced since are gone, and files deleted or renamed away from such
// a directory are back, with their last synced data.
//
// This is the strictest reading of POSIX that file systems in use
// approach (ext4 without its journal's ordering, for one, or a disk that
// reorders writes between flushes): an fsync of a file makes its data
// durable, not its name, and an fsync of a directory makes its entries
// durable, not the data of the files they name. Hard links, special
// files and symbolic links are refused, which the programs tested here
// never make.
package crashfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is a mounted crash file system.
type FS struct {
	live, shadows, mnt string

	mu     sync.Mutex
	server *fuse.Server
	root   *object
	byIno  map[uint64]*object // the live tree's inodes
	// rootIno is the live root's inode: FUSE numbers the root 1.
	rootIno uint64
	nextID  uint64
	stats   Stats
	// failSyncs is how many of the next file fsyncs fail.
	failSyncs int
}

// Stats counts what the file system was asked to make durable, and what
// the last Cut threw away.
type Stats struct {
	FileSyncs, DirSyncs int
	// LostWrites counts files whose unsynced writes the cuts dropped;
	// LostEntries, directory entries whose creation, deletion or rename
	// they undid.
	LostWrites, LostEntries int
}

// object is a file or directory as durable storage knows it.
type object struct {
	id   uint64
	dir  bool
	perm os.FileMode // as of its creation or last sync
	// A file's durable data is in its shadow file. dirtyFrom is the
	// lowest offset written or truncated to since its last fsync, -1 if
	// none: the live file and the shadow differ nowhere before it.
	shadow    string
	dirtyFrom int64
	// A directory's durable entries.
	entries map[string]*object
}

// Mount mounts on mnt a crash file system whose live files are in
// dir/live and whose durable state is kept in dir/shadow. What dir/live
// holds already counts as durable. It needs root and /dev/fuse.
func Mount(dir, mnt string) (*FS, error) {
	f := &FS{live: filepath.Join(dir, "live"), shadows: filepath.Join(dir, "shadow"), mnt: mnt}
	for _, d := range []string{f.live, f.shadows, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("crashfs: %w", err)
		}
	}
	root, err := f.adopt(f.live)
	if err != nil {
		return nil, err
	}
	f.root = root
	if err := f.index(); err != nil {
		return nil, err
	}
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

// adopt makes what path holds durable as it is, and returns its object.
func (f *FS) adopt(path string) (*object, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("crashfs: %w", err)
	}
	switch {
	case st.IsDir():
		o := f.newObject(true)
		o.perm = st.Mode().Perm()
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("crashfs: %w", err)
		}
		for _, e := range ents {
			c, err := f.adopt(filepath.Join(path, e.Name()))
			if err != nil {
				return nil, err
			}
			o.entries[e.Name()] = c
		}
		return o, nil
	case st.Mode().IsRegular():
		o := f.newObject(false)
		o.perm = st.Mode().Perm()
		if err := copyFile(o.shadow, path); err != nil {
			return nil, err
		}
		return o, nil
	}
	return nil, fmt.Errorf("crashfs: %s: only regular files and directories are supported", path)
}

func (f *FS) newObject(dir bool) *object {
	f.nextID++
	o := &object{id: f.nextID, dir: dir, dirtyFrom: -1}
	if dir {
		o.entries = map[string]*object{}
	} else {
		o.shadow = filepath.Join(f.shadows, strconv.FormatUint(o.id, 10))
	}
	return o
}

// index maps the live tree's inodes to the durable objects they are, the
// live tree being a copy of the durable one. An object named twice (a
// rename whose source and target directories were both synced, but not
// in between) becomes two, as the copies are two files now.
func (f *FS) index() error {
	f.byIno = map[uint64]*object{}
	seen := map[*object]bool{}
	var walk func(path string, o *object) error
	walk = func(path string, o *object) error {
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			return fmt.Errorf("crashfs: %s: %w", path, err)
		}
		f.byIno[st.Ino] = o
		if o == f.root {
			f.rootIno = st.Ino
		}
		for name, c := range o.entries {
			if seen[c] && !c.dir {
				d := f.newObject(false)
				if err := copyFile(d.shadow, c.shadow); err != nil {
					return err
				}
				o.entries[name], c = d, d
			}
			seen[c] = true
			if err := walk(filepath.Join(path, name), c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(f.live, f.root)
}

func (f *FS) mount() error {
	r := &fs.LoopbackRoot{Path: f.live}
	var st syscall.Stat_t
	if err := syscall.Stat(f.live, &st); err != nil {
		return fmt.Errorf("crashfs: %w", err)
	}
	r.Dev = st.Dev
	root := &node{LoopbackNode: &fs.LoopbackNode{RootData: r}, fs: f}
	r.RootNode = root
	// A cut unmounts, so nothing the kernel caches outlives it.
	opts := &fs.Options{MountOptions: fuse.MountOptions{FsName: "crashfs", Name: "crashfs", DirectMountStrict: true}}
	srv, err := fuse.NewServer(fs.NewNodeFS(root, opts), f.mnt, &opts.MountOptions)
	if err != nil {
		return fmt.Errorf("crashfs: mount %s: %w", f.mnt, err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		srv.Unmount()
		return fmt.Errorf("crashfs: mount %s: %w", f.mnt, err)
	}
	f.mu.Lock()
	f.server = srv
	f.mu.Unlock()
	return nil
}

// Dir is where the file system is mounted.
func (f *FS) Dir() string { return f.mnt }

// FailSyncs makes the next n fsyncs of files fail with EIO, as a failing
// disk makes them. As Linux does, a failed fsync forgets the writes it
// could not make durable: they stay in the live file, but a later fsync
// reports success without them, and a cut loses them.
func (f *FS) FailSyncs(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failSyncs = n
}

// Stats returns the counts so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Cut cuts the power: it unmounts the file system, puts back in the
// live directory exactly what had been made durable, and mounts it
// again. Whatever ran on it must have ended (its files closed), as a
// machine's processes end with its power.
func (f *FS) Cut() error {
	if err := f.unmount(); err != nil {
		return err
	}
	f.mu.Lock()
	lost, err := f.restore()
	f.stats.LostWrites += lost.LostWrites
	f.stats.LostEntries += lost.LostEntries
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.mount()
}

// Close unmounts the file system, leaving the live directory as it is.
func (f *FS) Close() error { return f.unmount() }

func (f *FS) unmount() error {
	f.mu.Lock()
	srv := f.server
	f.server = nil
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	// End the connection first. Every process that started after the
	// mount in a mount namespace of its own (ip netns exec starts each
	// one so) holds a copy of it, which unmounting this one leaves in
	// place, and go-fuse would wait for those copies to go. Whatever
	// ran on the file system has ended, so nothing is lost by it.
	if err := abort(f.mnt); err != nil {
		return fmt.Errorf("crashfs: unmount %s: %w", f.mnt, err)
	}
	var err error
	for range 50 { // a process that just died may still hold a file
		if err = srv.Unmount(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("crashfs: unmount %s: %w", f.mnt, err)
}

// connections is where the kernel lists FUSE connections (fusectl).
const connections = "/sys/fs/fuse/connections"

// abort ends the FUSE connection of the file system mounted at mnt.
func abort(mnt string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(mnt, &st); err != nil {
		return err
	}
	// The connection's number is the mount's device minor number.
	conn := strconv.FormatUint(st.Dev&0xff|st.Dev>>12&0xfff00, 10)
	if _, err := os.Stat(filepath.Join(connections, conn)); errors.Is(err, iofs.ErrNotExist) {
		if err := syscall.Mount("fusectl", connections, "fusectl", 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("mount fusectl on %s: %w", connections, err)
		}
	}
	if err := os.WriteFile(filepath.Join(connections, conn, "abort"), []byte("1"), 0o200); err != nil {
		return fmt.Errorf("abort the FUSE connection: %w", err)
	}
	return nil
}

// restore rebuilds the live directory from the durable state, counting
// what differed. Call with f.mu held and the file system unmounted.
func (f *FS) restore() (Stats, error) {
	var lost Stats
	var count func(path string, o *object) error
	count = func(path string, o *object) error {
		ents, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("crashfs: %w", err)
		}
		live := map[string]bool{}
		for _, e := range ents {
			live[e.Name()] = true
			c, ok := o.entries[e.Name()]
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(path, e.Name()), &st); err != nil {
				return fmt.Errorf("crashfs: %w", err)
			}
			if !ok || f.byIno[st.Ino] != c {
				lost.LostEntries++
				continue
			}
			if c.dir {
				if err := count(filepath.Join(path, e.Name()), c); err != nil {
					return err
				}
			} else if c.dirtyFrom >= 0 {
				lost.LostWrites++
			}
		}
		for name := range o.entries {
			if !live[name] {
				lost.LostEntries++
			}
		}
		return nil
	}
	if err := count(f.live, f.root); err != nil {
		return lost, err
	}
	ents, err := os.ReadDir(f.live)
	if err != nil {
		return lost, fmt.Errorf("crashfs: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(f.live, e.Name())); err != nil {
			return lost, fmt.Errorf("crashfs: %w", err)
		}
	}
	var build func(path string, o *object) error
	build = func(path string, o *object) error {
		for name, c := range o.entries {
			p := filepath.Join(path, name)
			if c.dir {
				if err := os.Mkdir(p, 0o700); err != nil {
					return fmt.Errorf("crashfs: %w", err)
				}
				if err := os.Chmod(p, c.perm); err != nil {
					return fmt.Errorf("crashfs: %w", err)
				}
				if err := build(p, c); err != nil {
					return err
				}
				continue
			}
			if err := copyFile(p, c.shadow); err != nil {
				return err
			}
			if err := os.Chmod(p, c.perm); err != nil {
				return fmt.Errorf("crashfs: %w", err)
			}
			c.dirtyFrom = -1
		}
		return nil
	}
	if err := build(f.live, f.root); err != nil {
		return lost, err
	}
	return lost, f.index()
}

// object returns the object of the live inode ino, made durable as it
// is now if the file system has not seen it made (path names it).
func (f *FS) object(ino uint64, path string, dir bool) (*object, error) {
	if o := f.byIno[ino]; o != nil {
		return o, nil
	}
	o := f.newObject(dir)
	if st, err := os.Lstat(path); err == nil {
		o.perm = st.Mode().Perm()
	}
	if !dir {
		if err := copyFile(o.shadow, path); err != nil {
			return nil, err
		}
	}
	f.byIno[ino] = o
	return o, nil
}

// created records a new file or directory at inode ino, with
// permissions perm: nothing of it is durable yet.
func (f *FS) created(ino uint64, dir bool, perm os.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.newObject(dir)
	o.perm = perm
	if !dir {
		if err := os.WriteFile(o.shadow, nil, 0o600); err != nil {
			return fmt.Errorf("crashfs: %w", err)
		}
		o.dirtyFrom = 0
	}
	f.byIno[ino] = o
	return nil
}

// dirtied records a write or truncation of the file at inode ino from
// offset off.
func (f *FS) dirtied(ino uint64, path string, off int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.object(ino, path, false)
	if err != nil {
		return err
	}
	if o.dirtyFrom < 0 || off < o.dirtyFrom {
		o.dirtyFrom = off
	}
	return nil
}

// syncFile makes the data of the file at inode ino durable; fd reads
// it.
func (f *FS) syncFile(ino uint64, path string, fd int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.FileSyncs++
	o, err := f.object(ino, path, false)
	if err != nil {
		return err
	}
	if f.failSyncs > 0 {
		f.failSyncs--
		o.dirtyFrom = -1
		return syscall.EIO
	}
	if o.dirtyFrom < 0 {
		if st, err := os.Stat("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
			o.perm = st.Mode().Perm()
		}
		return nil
	}
	// The file may be open for writing only, and its name gone: read it
	// through a descriptor of its own.
	live, err := os.Open("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return fmt.Errorf("crashfs: sync %s: %w", path, err)
	}
	defer live.Close()
	st, err := live.Stat()
	if err != nil {
		return fmt.Errorf("crashfs: sync %s: %w", path, err)
	}
	sh, err := os.OpenFile(o.shadow, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("crashfs: %w", err)
	}
	defer sh.Close()
	if o.dirtyFrom < st.Size() {
		src := io.NewSectionReader(live, o.dirtyFrom, st.Size()-o.dirtyFrom)
		if _, err := io.Copy(io.NewOffsetWriter(sh, o.dirtyFrom), src); err != nil {
			return fmt.Errorf("crashfs: sync %s: %w", path, err)
		}
	}
	if err := sh.Truncate(st.Size()); err != nil {
		return fmt.Errorf("crashfs: %w", err)
	}
	o.perm = st.Mode().Perm()
	o.dirtyFrom = -1
	return nil
}

// syncDir makes the entries of the directory at inode ino, path in the
// live tree, durable.
func (f *FS) syncDir(ino uint64, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.DirSyncs++
	o, err := f.object(ino, path, true)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("crashfs: %w", err)
	}
	entries := map[string]*object{}
	for _, e := range ents {
		p := filepath.Join(path, e.Name())
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return fmt.Errorf("crashfs: %w", err)
		}
		c, err := f.object(st.Ino, p, e.IsDir())
		if err != nil {
			return err
		}
		entries[e.Name()] = c
	}
	o.entries = entries
	return nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("crashfs: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("crashfs: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("crashfs: copy %s: %w", src, err)
	}
	return out.Close()
}

// node is a loopback node whose changes the FS records.
type node struct {
	*fs.LoopbackNode
	fs *FS
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeAllocater      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
)

// livePath is the node's path in the live directory.
func (n *node) livePath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// ino is the node's inode in the live directory.
func (n *node) ino() uint64 {
	if n.IsRoot() {
		return n.fs.rootIno
	}
	return n.StableAttr().Ino
}

// WrapChild makes every node of the tree a node of this file system.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fs: n.fs}
}

// errno reports err to the kernel as an I/O error.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// Create creates a file that is not durable yet, name nor data.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, fh, ff, e := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if e != 0 {
		return ch, fh, ff, e
	}
	if err := n.fs.created(ch.StableAttr().Ino, false, os.FileMode(out.Attr.Mode&0o777)); err != nil {
		fh.(*fs.LoopbackFile).Release(ctx)
		return nil, nil, 0, errno(err)
	}
	return ch, &file{fh.(*fs.LoopbackFile)}, ff, 0
}

// Mkdir creates a directory that is not durable yet, name nor entries.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, e := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if e != 0 {
		return ch, e
	}
	return ch, errno(n.fs.created(ch.StableAttr().Ino, true, os.FileMode(out.Attr.Mode&0o777)))
}

// Open opens a file; O_TRUNC is a truncation to zero.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		if err := n.fs.dirtied(n.ino(), n.livePath(), 0); err != nil {
			return nil, 0, errno(err)
		}
	}
	fh, ff, e := n.LoopbackNode.Open(ctx, flags)
	if e != 0 {
		return fh, ff, e
	}
	return &file{fh.(*fs.LoopbackFile)}, ff, 0
}

// Write writes through, not durably.
func (n *node) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if err := n.fs.dirtied(n.ino(), n.livePath(), off); err != nil {
		return 0, errno(err)
	}
	return f.(fs.FileWriter).Write(ctx, data, off)
}

// Setattr passes attributes through; a change of size is not durable.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		if err := n.fs.dirtied(n.ino(), n.livePath(), int64(size)); err != nil {
			return errno(err)
		}
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// Fsync makes the file's data durable (fsync and fdatasync alike).
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if n.IsDir() {
		return errno(n.fs.syncDir(n.ino(), n.livePath()))
	}
	h, ok := f.(*file)
	if !ok {
		return syscall.EBADF
	}
	fd, ok := h.lf.PassthroughFd()
	if !ok {
		return syscall.EBADF
	}
	return errno(n.fs.syncFile(n.ino(), n.livePath(), fd))
}

// file is an open file. It wraps go-fuse's loopback file so as to hide
// its descriptor: given that, the kernel would read and write the live
// file itself (FUSE passthrough), and no write would be seen here.
type file struct{ lf *fs.LoopbackFile }

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileWriter    = (*file)(nil)
	_ fs.FileFlusher   = (*file)(nil)
	_ fs.FileReleaser  = (*file)(nil)
	_ fs.FileGetattrer = (*file)(nil)
	_ fs.FileSetattrer = (*file)(nil)
	_ fs.FileLseeker   = (*file)(nil)
)

// Read reads the live file.
func (h *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return h.lf.Read(ctx, buf, off)
}

// Write writes the live file; the node records it.
func (h *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return h.lf.Write(ctx, data, off)
}

// Flush is a close of one of the file's descriptors.
func (h *file) Flush(ctx context.Context) syscall.Errno { return h.lf.Flush(ctx) }

// Release closes the live file.
func (h *file) Release(ctx context.Context) syscall.Errno { return h.lf.Release(ctx) }

// Getattr reads the live file's attributes.
func (h *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Getattr(ctx, out)
}

// Setattr changes the live file's attributes; the node records a new
// size.
func (h *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Setattr(ctx, in, out)
}

// Lseek finds data and holes in the live file.
func (h *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return h.lf.Lseek(ctx, off, whence)
}

// dirHandle is a directory handle whose fsync makes the directory's
// entries durable.
type dirHandle struct {
	loopbackDir
	n *node
}

// loopbackDir is what go-fuse's loopback directory handle does.
type loopbackDir interface {
	fs.FileReaddirenter
	fs.FileSeekdirer
	fs.FileReleasedirer
}

// OpendirHandle opens a directory for reading and fsync.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, e := n.LoopbackNode.OpendirHandle(ctx, flags)
	if e != 0 {
		return fh, ff, e
	}
	ld, ok := fh.(loopbackDir)
	if !ok {
		return nil, 0, syscall.ENOTSUP
	}
	return &dirHandle{loopbackDir: ld, n: n}, ff, 0
}

// Fsyncdir makes the directory's entries durable.
func (h *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return errno(h.n.fs.syncDir(h.n.ino(), h.n.livePath()))
}

// CopyFileRange is left to the kernel, which then writes through Write.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Allocate is refused: what it would change is not tracked.
func (n *node) Allocate(ctx context.Context, f fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}

// Link is refused (see the package doc).
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

// Symlink is refused (see the package doc).
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

// Mknod is refused (see the package doc).
func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}
