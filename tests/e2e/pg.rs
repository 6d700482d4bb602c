//! A throwaway PostgreSQL cluster for a test (the server crate's, as its benchmarks use it).

pub struct Postgres(sluice_server::store::ThrowawayPostgres);

impl Postgres {
    pub fn start() -> Postgres {
        Postgres(sluice_server::store::ThrowawayPostgres::start().unwrap_or_else(|e| panic!("{e}")))
    }
}

impl std::ops::Deref for Postgres {
    type Target = sluice_server::store::ThrowawayPostgres;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
