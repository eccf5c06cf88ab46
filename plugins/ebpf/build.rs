//! Compiles the eBPF programs of the repository's `ebpf/` folder into BPF objects
//! in OUT_DIR, which the library embeds with `include_bytes_aligned!`.
//!
//! 1. `vmlinux.h` (every kernel type, for CO-RE) is generated from the build
//!    machine's kernel BTF: `bpftool btf dump file /sys/kernel/btf/vmlinux format c`
//!    (or taken from `TFO_EBPF_VMLINUX_H`, required when cross-compiling).
//! 2. Each `ebpf/*.bpf.c` is compiled with
//!    `clang -O2 -g -target bpfel|bpfeb -D__TARGET_ARCH_<arch>`; `-g` emits the
//!    BTF that CO-RE relocation and the maps' key/value types need.
//! 3. DWARF is stripped with `llvm-strip -g` when available (BTF stays): it makes
//!    the objects about 50 times smaller.
//!
//! Needs (Debian): `apt-get install clang llvm libbpf-dev bpftool`. Overrides:
//! `CLANG`, `BPFTOOL`, `LLVM_STRIP`, `TFO_EBPF_VMLINUX_H`.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const INSTALL_HINT: &str =
    "install them with `apt-get install -y clang llvm libbpf-dev bpftool` (Debian/Ubuntu)";

fn fail(msg: impl AsRef<str>) -> ! {
    // Cargo shows a build script's stderr when it fails; the panic message is the
    // line people read, so it carries the whole explanation.
    panic!("\n\ntfo-plugin-ebpf build: {}\n\n", msg.as_ref());
}

/// The tool named by `env_var` if set, else the first of `candidates`, provided it
/// runs with `--version`.
fn find_tool(env_var: &str, candidates: &[&str]) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed={env_var}");
    let tries: Vec<PathBuf> = match env::var_os(env_var) {
        Some(p) => vec![PathBuf::from(p)],
        None => candidates.iter().map(PathBuf::from).collect(),
    };
    tries.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn run(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| fail(format!("cannot run {what} ({cmd:?}): {e}")));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if stderr.contains("bpf/bpf_helpers.h") {
            format!("\nlibbpf's headers are missing: {INSTALL_HINT}")
        } else {
            String::new()
        };
        fail(format!(
            "{what} failed ({}):\n{cmd:?}\n{stderr}{hint}",
            out.status
        ));
    }
    out
}

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src_dir = manifest.join("../../ebpf");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let endian = env::var("CARGO_CFG_TARGET_ENDIAN").unwrap_or_else(|_| "little".into());
    let host = env::var("HOST").unwrap_or_default();
    let target = env::var("TARGET").unwrap_or_default();

    // Kernel architecture name used by libbpf's bpf_tracing.h (PT_REGS_* macros).
    let kernel_arch = match target_arch.as_str() {
        "x86_64" | "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv",
        "powerpc64" | "powerpc" => "powerpc",
        "s390x" => "s390",
        "loongarch64" => "loongarch",
        "mips" | "mips64" => "mips",
        other => fail(format!(
            "no eBPF target mapping for architecture `{other}` (add one to build.rs)"
        )),
    };

    println!("cargo:rerun-if-changed={}", src_dir.display());
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src_dir)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", src_dir.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            println!("cargo:rerun-if-changed={}", p.display());
            p.to_string_lossy().ends_with(".bpf.c")
        })
        .collect();
    sources.sort();
    if sources.is_empty() {
        fail(format!("no *.bpf.c in {}", src_dir.display()));
    }

    let clang = find_tool("CLANG", &["clang"]).unwrap_or_else(|| {
        fail(format!(
            "clang was not found: the eBPF programs in ebpf/ are compiled with `clang -target bpf`; {INSTALL_HINT}, or set CLANG=/path/to/clang"
        ))
    });

    // vmlinux.h: given, or generated from this machine's kernel BTF.
    let vmlinux_h = out_dir.join("vmlinux.h");
    println!("cargo:rerun-if-env-changed=TFO_EBPF_VMLINUX_H");
    if let Some(given) = env::var_os("TFO_EBPF_VMLINUX_H") {
        println!("cargo:rerun-if-changed={}", Path::new(&given).display());
        std::fs::copy(&given, &vmlinux_h).unwrap_or_else(|e| {
            fail(format!(
                "cannot copy TFO_EBPF_VMLINUX_H={}: {e}",
                Path::new(&given).display()
            ))
        });
    } else {
        if host != target {
            fail(format!(
                "cross-compiling ({host} -> {target}): this machine's kernel types do not fit the target; generate vmlinux.h on a {target_arch} machine (bpftool btf dump file /sys/kernel/btf/vmlinux format c) and set TFO_EBPF_VMLINUX_H to it"
            ));
        }
        let btf = Path::new("/sys/kernel/btf/vmlinux");
        println!("cargo:rerun-if-changed={}", btf.display());
        if !btf.exists() {
            fail(format!(
                "{} does not exist: the build generates vmlinux.h from the kernel's BTF (a kernel built with CONFIG_DEBUG_INFO_BTF=y, the default on Debian 11+, Ubuntu 20.10+, RHEL 8.2+); or set TFO_EBPF_VMLINUX_H to a vmlinux.h generated elsewhere",
                btf.display()
            ));
        }
        let bpftool = find_tool(
            "BPFTOOL",
            &["bpftool", "/usr/sbin/bpftool", "/sbin/bpftool", "/usr/local/sbin/bpftool"],
        )
        .unwrap_or_else(|| {
            fail(format!(
                "bpftool was not found: it generates vmlinux.h from {}; {INSTALL_HINT}, or set BPFTOOL=/path/to/bpftool (or TFO_EBPF_VMLINUX_H to a ready vmlinux.h)",
                btf.display()
            ))
        });
        let out = run(
            Command::new(&bpftool)
                .args(["btf", "dump", "file"])
                .arg(btf)
                .args(["format", "c"]),
            "bpftool btf dump",
        );
        std::fs::write(&vmlinux_h, &out.stdout)
            .unwrap_or_else(|e| fail(format!("cannot write {}: {e}", vmlinux_h.display())));
    }

    let llvm_strip = find_tool("LLVM_STRIP", &["llvm-strip"]);
    let bpf_target = if endian == "big" { "bpfeb" } else { "bpfel" };
    for src in &sources {
        let file = src.file_name().unwrap().to_string_lossy();
        let obj = out_dir.join(file.replace(".bpf.c", ".bpf.o"));
        let out = run(
            Command::new(&clang)
                .args(["-O2", "-g", "-Wall", "-target", bpf_target])
                .arg(format!("-D__TARGET_ARCH_{kernel_arch}"))
                .arg("-I")
                .arg(&out_dir)
                .arg("-I")
                .arg(&src_dir)
                .arg("-c")
                .arg(src)
                .arg("-o")
                .arg(&obj),
            &format!("clang (compiling {file})"),
        );
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            if line.contains("warning:") {
                println!("cargo:warning={line}");
            }
        }
        if let Some(strip) = &llvm_strip {
            run(
                Command::new(strip).arg("-g").arg(&obj),
                &format!("llvm-strip -g {}", obj.display()),
            );
        }
    }
}
