/* The main of the layer link checks (meson.build): each links one layer,
 * whole, with only the layers below it, so that the link fails when the
 * layer calls into one it may not use. */
int main(void)
{
    return 0;
}
