/// Looks a name up in the cache, or asks the server when it is not there.
#[tevent_request(steps(start => [cached, asked], cached => [asked, done], asked => [done]))]
impl Lookup {
    type Output = String;
    type Error = LookupError;

    fn start(to: LookupStartStep<'_>, name: String, cache: &Cache) -> Next<Self> {
        let to = to.create(Lookup { name });
        if cache.may_have(&to.name) {
            to.cached(cache.get_send(to.ev(), &to.name))
        } else {
            to.asked(ask_send(to.ev(), &to.name))
        }
    }

    fn cached(&mut self, to: LookupCachedStep<'_>, hit: Option<String>) -> Next<Self> {
        match hit {
            Some(v) => to.done(v),
            None => to.asked(ask_send(to.ev(), &self.name)),
        }
    }

    fn asked(&mut self, to: LookupAskedStep<'_>, answer: Req<Ask>) -> Next<Self> {
        to.done(ask_recv(answer)?)
    }
}
