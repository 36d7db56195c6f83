use super::notation::messages;
use super::*;

fn end(name: &str, last: u8, mtu: Option<u32>, pid: Option<u32>) -> VethEnd {
    VethEnd {
        name: name.into(),
        mac: [2, 0, 0xc0, 0, 2, last],
        mtu,
        netns_pid: pid,
    }
}

#[test]
fn print_all() {
    let v = new_veth(
        1,
        &end("eth0", 1, None, None),
        &end("eth0", 2, Some(1280), Some(4242)),
    );
    println!("{}", messages(&v));
    println!("{}", messages(&link_up(2, "lo")));
    println!(
        "{}",
        messages(&new_address(3, 2, "192.0.2.2".parse().unwrap(), 24))
    );
    println!(
        "{}",
        messages(&new_address(3, 2, "2001:db8:1::2".parse().unwrap(), 64))
    );
    println!(
        "{}",
        messages(&new_route(
            4,
            false,
            None,
            RouteKind::Via("192.0.2.1".parse().unwrap())
        ))
    );
    println!(
        "{}",
        messages(&new_route(
            4,
            false,
            Some(("203.0.113.0".parse().unwrap(), 26)),
            RouteKind::Unreachable
        ))
    );
    println!("{}", messages(&dump_neighbours(5)));
    panic!();
}
