//! The error policy of every native entry: an error or a panic becomes a Java
//! `org.denoisekit.DenoiseKitException(kind, message)`, never an abort of the JVM.

use crate::bridge::BridgeError;
use jni::errors::{Error as JniError, ErrorPolicy};
use jni::objects::{JThrowable, JValue};
use jni::{Env, jni_sig, jni_str};
use std::any::Any;

/// Throws `DenoiseKitException(kind, message)` and returns the type's default value.
pub struct ThrowDenoiseKitException;

fn throw(env: &mut Env<'_>, kind: &str, msg: &str) -> jni::errors::Result<()> {
    // A half-finished JNI call may have left an exception pending; ours replaces it.
    env.exception_clear();
    let jkind = env.new_string(kind)?;
    let jmsg = env.new_string(msg)?;
    let obj = env.new_object(
        jni_str!("org/denoisekit/DenoiseKitException"),
        jni_sig!("(Ljava/lang/String;Ljava/lang/String;)V"),
        &[JValue::from(&jkind), JValue::from(&jmsg)],
    )?;
    let thr = env.cast_local::<JThrowable>(obj)?;
    // `throw` reports success as Err(JavaException): the exception is now pending.
    match env.throw(&thr) {
        Err(JniError::JavaException) => Ok(()),
        other => other,
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

impl<T: Default> ErrorPolicy<T, BridgeError> for ThrowDenoiseKitException {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut Self::Captures<'unowned_env_local, 'native_method>,
        err: BridgeError,
    ) -> jni::errors::Result<T> {
        // A Java exception raised inside a JNI call says more than our wrapper would: let
        // it propagate as is.
        if matches!(err, BridgeError::Jni(JniError::JavaException)) && env.exception_check() {
            return Ok(T::default());
        }
        // The jni crate catches and clears the JVM's OutOfMemoryError of a failed array
        // allocation (the image's copy or the result), reporting only "JNI call failed":
        // raised again, Fiji and the plugin say what they say of any heap too small.
        if matches!(
            err,
            BridgeError::Jni(JniError::JniCall(jni::errors::JniError::NoMemory))
        ) {
            env.exception_clear();
            // Success shows as a pending exception (the call itself reports it as an
            // error); so does the JVM's own OutOfMemoryError if even this one did not fit.
            let _ = env.throw_new(
                jni_str!("java/lang/OutOfMemoryError"),
                jni_str!(
                    "Java heap space: no room for DenoiseKit's copy of the image or its result"
                ),
            );
            if env.exception_check() {
                return Ok(T::default());
            }
        }
        throw(env, err.kind(), &err.to_string())?;
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut Self::Captures<'unowned_env_local, 'native_method>,
        payload: Box<dyn Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let msg = format!(
            "internal error in DenoiseKit (please report): {}",
            panic_message(&*payload)
        );
        throw(env, "Internal", &msg)?;
        Ok(T::default())
    }
}
