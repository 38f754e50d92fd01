package sandbox

// Messages between the host and the launcher, on the sync socket. Each is a
// 4-byte little-endian length and a JSON body. See the package doc for the
// exchange.

// launcherArg0 is argv[0] of a launcher invocation; argv[1] is the sync
// socket's descriptor number. Nothing else starts a program this way.
const launcherArg0 = "airlock-sandbox-launcher/1"

// goAhead is the byte the host sends once the launcher is in its cgroups;
// the launcher execs the plugin only after it.
const goAhead = 'G'

// maxMessage bounds a message in either direction.
const maxMessage = 1 << 20

// launchMode says what the launcher does at the end.
type launchMode string

const (
	modeRun   launchMode = "run"   // exec the plugin
	modeProbe launchMode = "probe" // apply everything to itself, report, exit 0
)

// launchSpec is the host's instructions to the launcher.
type launchSpec struct {
	Mode launchMode `json:"mode"`
	// Path, Argv, Env are the plugin's program, argv and complete
	// environment; Dir is its working directory inside the sandbox.
	Path string   `json:"path"`
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`

	Hostname string    `json:"hostname,omitempty"` // set when the UTS namespace is new
	Mounts   []mountOp `json:"mounts,omitempty"`   // nil: no private mount tree
	// Landlock rules; nil: Landlock not requested.
	Landlock []landlockRule `json:"landlock,omitempty"`
	// Seccomp is the assembled filter, struct sock_filter after struct
	// sock_filter in native byte order (8 bytes each); nil: none. Bytes
	// rather than JSON objects: the launcher decodes it on every start.
	Seccomp    []byte   `json:"seccomp,omitempty"`
	NoNewPrivs bool     `json:"no_new_privs"`
	Rlimits    []rlimit `json:"rlimits,omitempty"`
	// DropUID/DropGID, when nonzero, are set by the launcher itself after
	// the mounts: the host is root but no user namespace was created.
	DropUID int `json:"drop_uid,omitempty"`
	DropGID int `json:"drop_gid,omitempty"`
	// KeepFDs is how many descriptors (0 … KeepFDs-1) the plugin inherits.
	KeepFDs int `json:"keep_fds"`
	// Require are the protections whose failure aborts the launch.
	Require []string `json:"require,omitempty"`
}

type rlimit struct {
	Resource int    `json:"resource"`
	Name     string `json:"name"`
	Value    uint64 `json:"value"` // soft and hard
}

// launchReport is the launcher's answer, sent just before execve (or, in
// probe mode, before exiting). An exec that works closes the socket
// (close-on-exec); one that fails sends a second report with Error set.
type launchReport struct {
	Applied []string          `json:"applied,omitempty"`
	Missing map[string]string `json:"missing,omitempty"` // protection → why it was not applied
	Detail  map[string]string `json:"detail,omitempty"`  // protection → how ("ABI 7")
	// Error aborts the launch; Protection names the required protection
	// that caused it, if one did.
	Error      string `json:"error,omitempty"`
	Protection string `json:"protection,omitempty"`
	// Stamps time the launcher's steps, for the host's Debug log and the
	// spawn benchmarks.
	Stamps []stamp `json:"stamps,omitempty"`
}

// stamp is the CLOCK_MONOTONIC time, in nanoseconds, at which a launch
// reached a named point. The clock is the same in the host and the
// launcher, so their stamps line up.
type stamp struct {
	Stage string `json:"s"`
	At    int64  `json:"t"`
}

// mountOp is one step of building the plugin's root. Targets are absolute
// paths inside the sandbox.
type mountOp struct {
	Kind     string `json:"kind"` // "tmpfs", "bind", "proc", "symlink"
	Source   string `json:"source,omitempty"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"ro,omitempty"`
	File     bool   `json:"file,omitempty"`     // a bind of a non-directory
	Device   bool   `json:"device,omitempty"`   // a bind of a device node (no nodev)
	Data     string `json:"data,omitempty"`     // tmpfs options
	Strict   bool   `json:"strict,omitempty"`   // open the source without following any symlink
	Optional bool   `json:"optional,omitempty"` // skip when the source does not exist
	// Recursive binds the mounts below Source too (read-only applies to the
	// top one only; used for the host's /proc).
	Recursive bool `json:"recursive,omitempty"`
}

// landlockRule grants access beneath a path.
type landlockRule struct {
	Path   string `json:"path"`
	Access string `json:"access"` // "rx" (read, execute), "ro", "rw", "dev" (read, write files)
	// Private rules apply only inside the private mount tree (the private
	// /tmp would otherwise be the host's shared /tmp).
	Private bool `json:"private,omitempty"`
}
