// Package sandbox contains one process-tier plugin: namespaces, a private
// mount tree, Landlock, seccomp, no_new_privs, rlimits and cgroups, applied
// between fork and exec, with a kill that always reaches the whole tree.
//
// # Why a launcher?
//
// Most of the sandbox must be applied by the child itself after fork and
// before it execs the plugin: mounts, Landlock, the seccomp filter,
// rlimits. A Go program cannot run code in that window, so the host starts
// a launcher instead (its own binary again, /proc/self/exe, recognised by
// an init function in package internal/sandbox/launcher, or
// Spec.Launcher), and the launcher applies everything and execs the
// plugin. Namespaces, the uid mapping, the parent-death signal and the v2
// cgroup are requested at clone time through SysProcAttr.
//
// # Use
//
//	cmd := exec.Command(program, args...)    // the plugin's argv
//	cmd.Env = env                             // its whole environment
//	cmd.ExtraFiles = []*os.File{socket}       // fd 3
//	cmd.Stdout, cmd.Stderr = outW, errW
//	sb, err := sandbox.Prepare(ctx, cmd, spec, logger) // rewrites cmd
//	err = cmd.Start()
//	err = sb.Started()                        // launcher handshake; plugin exec'd
//	...                                       // sb.Kill() whenever needed
//	err = cmd.Wait()
//	err = sb.Close()                          // kill leftovers, remove cgroups
//
// After Prepare the command belongs to the sandbox: Path, Args, Env,
// ExtraFiles and SysProcAttr must not change.
//
// # Host and launcher
//
// The launcher's side lives in package internal/sandbox/launcher, which
// also defines the messages. They talk over a socketpair (the launcher's
// end is the first extra file after the plugin's; argv[1] names it; the
// checked program's descriptor, Spec.Exec, comes after it). Messages are a 4-byte
// little-endian length and a compact binary body (launcher.Spec.Encode).
//
//	host                                         launcher (in its namespaces,
//	                                             uid 0 inside = plugin uid outside)
//	cmd.Start ── clone3(CLONE_NEW*, INTO_CGROUP) ──▶ init(): wait for the spec
//	Started:
//	  launcher.Spec ──────────────────────────────▶ mounts, pivot_root, Landlock,
//	  check /proc/<pid>/ns/*, host uid                 drop capabilities, seccomp
//	  place in v1 cgroups, oom_score_adj=1000
//	  watch exit (pidfd) and OOM (eventfd)
//	  decide the host's part of Require
//	  go byte ────────────────────────────────────▶ (its own part of Require)
//	             ◀──────────────────── launcher.Report (applied, missing, stamps)
//	  check the report against Require              rlimits, execveat(Spec.Exec)
//	             ◀──────────────────────── EOF (close-on-exec)
//	                                or launcher.Report{Error}, exit 127
//
// # Honesty
//
// Applied lists a protection only when it was verified: namespaces by
// comparing /proc/<pid>/ns with the host's, the user namespace also by the
// host-side uid in /proc/<pid>/status, cgroups by the host's writes, the
// rest by the launcher having applied them. What is missing is logged at
// Warn with the reason, and Status reports it per protection.
//
// # Killing
//
// Kill sends SIGKILL to the plugin's main process through a pidfd (no pid
// reuse) and kills its cgroup (cgroup.kill, or freeze, kill, thaw). The
// plugin is the init of its pid namespace, so the kernel kills every other
// member when it dies; when it exits on its own, the sandbox kills whatever
// it left in its cgroups at once. With Pdeathsig the tree dies with the
// host too. A process group is never the only means.
package sandbox
