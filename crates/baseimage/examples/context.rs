//! Writes the dockerrm_baseimage build context to a file, for building the
//! image by hand:
//!
//! ```text
//! cargo run -p berth-baseimage --example context -- /bin/busybox ctx.tar
//! docker build -t dockerrm_baseimage - < ctx.tar
//! ```

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [busybox, out] = args.as_slice() else {
        eprintln!("usage: context BUSYBOX OUT.tar");
        std::process::exit(2);
    };
    let result = berth_baseimage::read_busybox(busybox).and_then(|bytes| berth_baseimage::build_context(&bytes));
    match result {
        Ok(ctx) => {
            if let Err(e) = std::fs::write(out, &ctx.tar) {
                eprintln!("cannot write {out}: {e}");
                std::process::exit(1);
            }
            println!("{}", ctx.digest);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
