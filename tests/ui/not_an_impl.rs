// The attribute on something other than an impl block, and on a trait impl.
use tevent::tevent_request;

#[tevent_request(steps(start => [done]))]
struct Echo;

struct Other;

#[tevent_request(steps(start => [done]))]
impl Clone for Other {
    fn clone(&self) -> Self {
        Other
    }
}

fn main() {
    let _ = Echo;
}
