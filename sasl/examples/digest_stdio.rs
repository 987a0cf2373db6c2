//! A DIGEST-MD5 server on stdin/stdout, one token per line, for interop checks against real
//! clients (pure-sasl, the JDK) without a ZooKeeper connection around them.
//!
//! Usage: `digest_stdio <jaas-file> [section]`. It prints the challenge, reads the response,
//! prints the rspauth or `ERROR <reason>`, and reports the identity on stderr.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use rzk_sasl::{Credentials, DigestMd5Server, Jaas, Step};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: digest_stdio <jaas-file> [section]")?;
    let section = args.get(2).map_or("Server", String::as_str);
    let jaas = Jaas::load(Path::new(path))?;
    let credentials = Arc::new(Credentials::from_jaas(&jaas, section, None)?);
    let mut server = DigestMd5Server::new(credentials);
    let mut stdout = std::io::stdout().lock();
    let mut lines = std::io::stdin().lock().split(b'\n');
    let mut token = Vec::new();
    loop {
        match server.evaluate(&token) {
            Ok(Step::Challenge(challenge)) => {
                stdout.write_all(&challenge)?;
                stdout.write_all(b"\n")?;
                stdout.flush()?;
            }
            Ok(Step::Complete {
                token,
                authorization_id,
            }) => {
                stdout.write_all(&token)?;
                stdout.write_all(b"\n")?;
                eprintln!("complete: authorization id {authorization_id:?}");
                return Ok(());
            }
            Err(e) => {
                writeln!(stdout, "ERROR {e}")?;
                return Ok(());
            }
        }
        token = match lines.next() {
            Some(line) => line?,
            None => return Ok(()),
        };
    }
}
