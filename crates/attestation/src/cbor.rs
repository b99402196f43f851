//! A small strict CBOR reader and writer for exactly the types a Nitro document uses.
