"""Next-event prediction for video (arXiv 2505.22457): media loading and clip cutting (`media`),
mp4 / frame-list writing (`writer`), synthetic verifiable video tasks (`synth`), the NEP record
builder from the released V1-33K layout (`nep`) and the `mmreason nep` command (`cli`)."""
