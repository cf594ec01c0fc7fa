//! Test guest: a valid component that targets a world of its own (it
//! exports `run`, not `handle`), so percore must refuse to deploy it.

wit_bindgen::generate!({
    inline: "package test:other; world other { export run: func() -> u32; }",
    world: "test:other/other",
});

struct Other;

impl Guest for Other {
    fn run() -> u32 {
        42
    }
}

export!(Other);
