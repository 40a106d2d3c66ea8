//! Prints every reassembly event of a capture (debugging aid):
//! `cargo run --example events -- CAPTURE [CONN]`.

use syncscope::capture::Reader;
use syncscope::flow::{self, FlowMeta, FlowSummary, Side, Sink};
use syncscope::pipeline;
use syncscope::reassembly::Event;

struct Print(Option<u64>);

impl Sink for Print {
    fn event(&mut self, meta: &FlowMeta, side: Side, ev: Event<'_>) {
        let dir = meta.direction(side);
        if self.0.is_some_and(|c| c != meta.id) {
            return;
        }
        match ev {
            Event::Data {
                offset,
                bytes,
                after_gap,
                packet,
            } => println!(
                "{} {} data @{offset} len {} (packet {packet}){}",
                meta.id,
                dir.as_str(),
                bytes.len(),
                if after_gap { " after-gap" } else { "" }
            ),
            other => println!("{} {} {other:?}", meta.id, dir.as_str()),
        }
    }
    fn flow_end(&mut self, s: &FlowSummary) {
        println!("{} end {:?}", s.id, s.end);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: events CAPTURE [CONN]")?;
    let conn = args.next().map(|c| c.parse()).transpose()?;
    let mut reader = Reader::open(path.as_ref())?;
    let s = pipeline::run(
        &mut reader,
        flow::Config::default(),
        &mut Print(conn),
        |_| {},
    );
    eprintln!("{} packets", s.packets);
    Ok(())
}
